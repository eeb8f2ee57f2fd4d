// One of a subscription's two plan windows (5-hour, weekly) as a half ring
// that fills as the window is used, the percentage written in it, and under
// it the window's name, its level in words and when it resets.

import { h, svg } from '../dom.js';
import { LEVELS, percentText, resetText, windowLevel, windowName } from '../utilization.js';
import { levelBadge } from './level.js';

const RADIUS = 40;
const ARC = Math.PI * RADIUS;
const PATH = `M ${50 - RADIUS} 50 A ${RADIUS} ${RADIUS} 0 0 1 ${50 + RADIUS} 50`;

/** The gauge of window `key` (`5h`, `7d`) from the observation's `window`. */
export function utilizationGauge(key, window, now = Date.now()) {
  const used = window?.utilization;
  const level = windowLevel(window);
  const filled = Math.max(0, Math.min(1, used ?? 0));
  const reset = window ? resetText(window.resets_at, now) : 'not in the last reply';
  const name = windowName(key);
  const amount = typeof used === 'number' ? `${percentText(used)} used` : 'no figure';
  return h(
    'div',
    { class: `util-gauge util-gauge--${level}`, dataset: { window: key, level } },
    h(
      'div',
      {
        class: 'util-gauge__dial',
        role: 'meter',
        'aria-label': name,
        'aria-valuemin': 0,
        'aria-valuemax': 100,
        'aria-valuenow': Math.round(filled * 100),
        'aria-valuetext': `${amount}, ${LEVELS[level].word}, ${reset}`,
      },
      svg(
        'svg',
        { class: 'util-gauge__ring', viewBox: '0 0 100 56', 'aria-hidden': 'true' },
        svg('path', { d: PATH, class: 'util-gauge__track', pathLength: ARC }),
        filled > 0
          ? svg('path', {
              d: PATH,
              class: 'util-gauge__fill',
              pathLength: ARC,
              'stroke-dasharray': `${(filled * ARC).toFixed(2)} ${ARC.toFixed(2)}`,
            })
          : null,
      ),
      h('span', { class: 'util-gauge__value', 'aria-hidden': 'true' }, percentText(used)),
    ),
    h('span', { class: 'util-gauge__name' }, name),
    levelBadge(level),
    h('span', { class: 'util-gauge__reset' }, reset),
  );
}
