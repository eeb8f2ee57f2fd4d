// Who used a subscription's windows (the `windows` of
// `/api/admin/subscriptions`): for the 5-hour and the weekly window, each
// person's estimated share as words and a small bar ("Ann: 38 % of this
// 5-hour window"), biggest first, and the rise no ccgate request explains
// shown apart, with its own pattern and words ("Unattributed use (outside
// ccgate): 6 %"). The figures are estimates, and the panel says so.

import { h } from '../dom.js';
import { number } from '../format.js';
import { UNATTRIBUTED_SHOWN_FROM, shareText, thisWindow } from '../utilization.js';

/** People listed by name per window; the rest are summed in one line. */
const MOST_PEOPLE = 6;
const ORDER = ['five_hour', 'seven_day'];

export const SHARES_NOTE =
  'Estimates: each rise of the subscription’s windows is shared among the ccgate requests that caused it, ' +
  'weighted by model and tokens. Anthropic reports whole percents, so small shares are rough.';

/** A small share bar (a meter) for `fraction` of a window. */
export function shareBar(fraction, label, valueText) {
  const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  const fill = h('span', { class: 'share__fill' });
  fill.style.width = `${percent}%`;
  return h(
    'span',
    {
      class: 'share__track',
      role: 'meter',
      'aria-label': label,
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': percent,
      'aria-valuetext': valueText,
    },
    fill,
  );
}

function personName(person) {
  return person.name ?? `Person ${person.user_id} (deleted)`;
}

function personLine(person, window) {
  const name = personName(person);
  const amount = `${shareText(person.share)} of ${thisWindow(window)}`;
  const requests = `${number(person.requests)} request${person.requests === 1 ? '' : 's'}`;
  return h(
    'li',
    { class: 'share', dataset: { userId: person.user_id } },
    h(
      'span',
      { class: 'share__text' },
      person.name ? h('a', { href: `/dashboard/users/${person.user_id}` }, name) : name,
      `: ${amount}`,
    ),
    shareBar(person.share, `${name}’s share`, `${amount}, ${requests}`),
  );
}

function othersLine(people, window) {
  const total = people.reduce((sum, person) => sum + person.share, 0);
  const text = `${number(people.length)} more people: ${shareText(total)} of ${thisWindow(window)} together`;
  return h(
    'li',
    { class: 'share share--others' },
    h('span', { class: 'share__text' }, text),
    shareBar(total, 'Everyone else’s share', text),
  );
}

function unattributedLine(amount) {
  const text = `Unattributed use (outside ccgate): ${shareText(amount)}`;
  return h(
    'li',
    { class: 'share share--outside', dataset: { unattributed: 'true' } },
    h(
      'span',
      { class: 'share__text' },
      h('span', { class: 'share__icon', 'aria-hidden': 'true' }, '◌ '),
      text,
    ),
    shareBar(amount, 'Unattributed use', `${shareText(amount)}, not explained by any ccgate request`),
  );
}

function windowBlock(window) {
  const people = window.people ?? [];
  const shown = people.slice(0, MOST_PEOPLE);
  const rest = people.slice(MOST_PEOPLE);
  const outside = window.unattributed > UNATTRIBUTED_SHOWN_FROM ? unattributedLine(window.unattributed) : null;
  const lines = [
    ...shown.map((person) => personLine(person, window.window)),
    rest.length ? othersLine(rest, window.window) : null,
    outside,
  ].filter(Boolean);
  return h(
    'div',
    { class: 'shares__window', dataset: { window: window.window } },
    h('h4', { class: 'shares__title' }, `Who used ${thisWindow(window.window)}`),
    lines.length
      ? h('ul', { class: 'shares__list' }, lines)
      : h('p', { class: 'muted shares__none' }, 'No use through ccgate in this window yet.'),
  );
}

/** The people of each window and the note, or null without figures. */
export function windowShares(windows) {
  const known = (windows ?? []).filter((w) => ORDER.includes(w.window));
  if (!known.length) return null;
  known.sort((a, b) => ORDER.indexOf(a.window) - ORDER.indexOf(b.window));
  return h(
    'section',
    { class: 'shares', 'aria-label': 'Who used the windows' },
    known.map(windowBlock),
    h('p', { class: 'shares__note muted' }, SHARES_NOTE),
  );
}
