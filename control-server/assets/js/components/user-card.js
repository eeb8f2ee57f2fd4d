// A user on the overview: status, credit gauge, per-model bars against the
// limits, tokens today, last activity and device.

import { h } from '../dom.js';
import { ago, compact } from '../format.js';
import { FAMILIES } from '../rules.js';
import { statusBadge } from './badge.js';
import { creditGauge } from './gauge.js';
import { creditWindow, limitMeters, shareMeters, tokenTotal } from './limits.js';
import { FAMILY_STYLE } from './patterns.js';

/** The device seen most recently (online ones first). */
function mainDevice(devices) {
  return [...(devices ?? [])].sort(
    (a, b) => Number(b.online) - Number(a.online) || new Date(b.last_seen_at ?? 0) - new Date(a.last_seen_at ?? 0),
  )[0];
}

function todayTokens(report) {
  const today = report?.today ?? {};
  return Object.values(today).reduce((sum, totals) => sum + tokenTotal(totals), 0);
}

/** `Opus 5 · Sonnet 3`: today's prompts of each family that has any. */
function todayPrompts(user) {
  const usage = user.usage ?? {};
  return FAMILIES.filter((family) => usage[family] > 0)
    .map((family) => `${FAMILY_STYLE[family].label} ${usage[family]}`)
    .join(' · ');
}

export function userCard(user) {
  const device = mainDevice(user.devices);
  const meters = [
    ...limitMeters(user.report, { only: (line) => line.metric !== 'credits' }),
    ...shareMeters(user.report),
  ];
  return h(
    'article',
    {
      class: `card user-card user-card--${user.status}`,
      dataset: { userId: user.id, status: user.status },
      'aria-labelledby': `user-${user.id}-name`,
    },
    h(
      'header',
      { class: 'card__head' },
      h(
        'h3',
        { class: 'card__title', id: `user-${user.id}-name` },
        h('a', { href: `/dashboard/users/${user.id}` }, user.name),
      ),
      statusBadge(user.status),
    ),
    h(
      'div',
      { class: 'user-card__summary' },
      creditGauge({ balance: user.credit_balance, budget: user.credit_budget, windowText: creditWindow(user.report) }),
      h(
        'dl',
        { class: 'facts facts--stacked' },
        h(
          'div',
          {},
          h('dt', {}, 'Tokens today'),
          h('dd', { class: 'user-card__tokens' }, compact(todayTokens(user.report))),
        ),
        h('div', {}, h('dt', {}, 'Last active'), h('dd', {}, ago(user.last_active_at))),
        h(
          'div',
          {},
          h('dt', {}, 'Device'),
          h(
            'dd',
            {},
            device
              ? [
                  device.hostname ?? `device ${device.id}`,
                  ' ',
                  h(
                    'span',
                    { class: `presence presence--${device.online ? 'online' : 'offline'}` },
                    device.online ? '● online' : '○ offline',
                  ),
                ]
              : 'not set up yet',
          ),
        ),
      ),
    ),
    h(
      'p',
      { class: 'user-card__today' },
      h('span', { class: 'muted' }, 'Prompts today: '),
      todayPrompts(user) || 'none',
    ),
    meters.length
      ? h('div', { class: 'user-card__meters' }, meters)
      : h('p', { class: 'muted user-card__nolimits' }, 'No per-model limits'),
  );
}
