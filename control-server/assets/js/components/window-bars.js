// A subscription's other windows (per-model weekly buckets such as
// `7d_opus`, `7d_sonnet`) as small bars: length, level word and percentage.

import { h } from '../dom.js';
import { LEVELS, otherWindows, percentText, resetText, windowLevel, windowName } from '../utilization.js';
import { levelBadge } from './level.js';

function windowBar(key, window, now) {
  const used = window.utilization;
  const level = windowLevel(window);
  const fill = h('span', { class: 'window-bar__fill' });
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, used ?? 0)) * 100)}%`;
  const name = windowName(key);
  return h(
    'li',
    { class: `window-bar window-bar--${level}`, dataset: { window: key, level } },
    h(
      'div',
      { class: 'window-bar__head' },
      h('span', { class: 'window-bar__name' }, name),
      h('span', { class: 'window-bar__amount' }, percentText(used), ' ', levelBadge(level)),
    ),
    h(
      'span',
      {
        class: 'window-bar__track',
        role: 'meter',
        'aria-label': name,
        'aria-valuemin': 0,
        'aria-valuemax': 100,
        'aria-valuenow': Math.round(Math.max(0, Math.min(1, used ?? 0)) * 100),
        'aria-valuetext': `${percentText(used)} used, ${LEVELS[level].word}`,
      },
      fill,
    ),
    window.resets_at ? h('span', { class: 'window-bar__reset' }, resetText(window.resets_at, now)) : null,
  );
}

/** The bars, or null when the observation has only the plan's two windows. */
export function windowBars(windows, now = Date.now()) {
  const keys = otherWindows(windows);
  if (!keys.length) return null;
  return h(
    'ul',
    { class: 'window-bars', 'aria-label': 'Per-model windows' },
    keys.map((key) => windowBar(key, windows[key], now)),
  );
}
