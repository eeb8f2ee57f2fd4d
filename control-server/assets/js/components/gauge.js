// The credit gauge: a half ring that empties as credits are spent, with the
// balance written in the middle (the number, not the colour, is the news).

import { h, svg } from '../dom.js';
import { number } from '../format.js';

const RADIUS = 40;
const ARC = Math.PI * RADIUS;

/** `balance` left of `budget` credits in `windowText` (-1: no budget). */
export function creditGauge({ balance, budget, windowText = '' }) {
  if (budget === -1 || budget === undefined) {
    return h(
      'div',
      { class: 'gauge gauge--none' },
      h('span', { class: 'gauge__big' }, '∞'),
      h('span', { class: 'gauge__caption' }, 'No credit budget'),
    );
  }
  const left = budget > 0 ? Math.max(0, balance) / budget : 0;
  const level = left <= 0 ? 'full' : left <= 0.2 ? 'warn' : 'ok';
  const path = `M ${50 - RADIUS} 50 A ${RADIUS} ${RADIUS} 0 0 1 ${50 + RADIUS} 50`;
  const text = `${number(Math.max(0, balance))} of ${number(budget)} credits left`;
  return h(
    'div',
    {
      class: `gauge gauge--${level}`,
      role: 'meter',
      'aria-label': `Credits${windowText ? ` ${windowText}` : ''}`,
      'aria-valuemin': 0,
      'aria-valuemax': budget,
      'aria-valuenow': Math.max(0, balance),
      'aria-valuetext': text,
    },
    svg(
      'svg',
      { class: 'gauge__ring', viewBox: '0 0 100 56', 'aria-hidden': 'true' },
      svg('path', { d: path, class: 'gauge__track', pathLength: ARC }),
      svg('path', {
        d: path,
        class: 'gauge__fill',
        pathLength: ARC,
        'stroke-dasharray': `${(left * ARC).toFixed(2)} ${ARC.toFixed(2)}`,
      }),
    ),
    h('span', { class: 'gauge__big' }, number(Math.max(0, balance))),
    h(
      'span',
      { class: 'gauge__caption' },
      `of ${number(budget)} credits left${windowText ? ` ${windowText}` : ''}`,
      level === 'full' ? h('strong', { class: 'gauge__flag' }, ' · used up') : null,
      level === 'warn' ? h('strong', { class: 'gauge__flag' }, ' · running low') : null,
    ),
  );
}
