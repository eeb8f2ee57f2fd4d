// A usage bar against a limit. The level shows in three ways at once: the
// bar's length, its pattern (plain, striped from 80 %, cross-hatched at the
// limit) and the words beside it.

import { h } from '../dom.js';
import { number } from '../format.js';

const WARN_AT = 0.8;

/** `used` of `limit` (-1 unlimited, 0 forbidden); `note` says when it resets. */
export function usageMeter({ label, used, limit, note, format = number, amountText }) {
  const capped = limit > 0;
  const fraction = capped ? used / limit : limit === 0 ? 1 : 0;
  const level = limit === 0 || fraction >= 1 ? 'full' : fraction >= WARN_AT ? 'warn' : 'ok';
  const amount =
    amountText ??
    (limit === -1 ? `${format(used)} · no limit` : limit === 0 ? 'forbidden' : `${format(used)} / ${format(limit)}`);
  const status = level === 'full' ? (limit === 0 ? '' : 'limit reached') : level === 'warn' ? 'nearly used up' : '';
  const fill = h('span', { class: 'meter__fill' });
  fill.style.width = `${Math.min(100, Math.round(fraction * 100))}%`;
  const track = h(
    'span',
    {
      class: 'meter__track',
      role: 'meter',
      'aria-label': label,
      'aria-valuemin': 0,
      'aria-valuemax': capped ? limit : 1,
      'aria-valuenow': capped ? Math.min(used, limit) : 0,
      'aria-valuetext': [amount, status].filter(Boolean).join(', '),
    },
    fill,
  );
  return h(
    'div',
    { class: `meter meter--${level}` },
    h(
      'div',
      { class: 'meter__head' },
      h('span', { class: 'meter__label' }, label),
      h(
        'span',
        { class: 'meter__amount' },
        level === 'warn' ? h('span', { class: 'meter__flag', 'aria-hidden': 'true' }, '▲ ') : null,
        level === 'full' ? h('span', { class: 'meter__flag', 'aria-hidden': 'true' }, '■ ') : null,
        amount,
      ),
    ),
    track,
    note || status ? h('div', { class: 'meter__note' }, [status, note].filter(Boolean).join(' · ')) : null,
  );
}
