// A subscription's utilization in words: the windows' names, how full a
// window is (ok, warning, limited), when it resets, where the subscription
// comes from. Pure functions; the components draw with them.

import { duration, whenText } from './format.js';

/** From this fraction of a window on, it is a warning. */
export const WARNING_AT = 0.75;

/** The two windows every plan has, drawn as gauges. */
export const PLAN_WINDOWS = ['5h', '7d'];

const WINDOW_NAMES = { '5h': '5-hour window', '7d': 'Weekly window' };
const PERIOD_NAMES = { '5h': '5-hour', '7d': 'weekly' };

export const LEVELS = {
  ok: { icon: '●', word: 'ok' },
  warning: { icon: '▲', word: 'warning' },
  limited: { icon: '■', word: 'limited' },
  unknown: { icon: '○', word: 'no figure' },
};

/** `5-hour window`, `Weekly window`, `Opus · weekly` (for `7d_opus`). */
export function windowName(key) {
  if (WINDOW_NAMES[key]) return WINDOW_NAMES[key];
  const [period, ...rest] = key.split('_');
  const model = rest.join(' ');
  if (!model) return key;
  const label = model[0].toUpperCase() + model.slice(1);
  return `${label} · ${PERIOD_NAMES[period] ?? period}`;
}

/**
 * How full a window is: `limited` at 100 % or when Anthropic rejects it,
 * `warning` from 75 % (or when Anthropic warns), else `ok`; `unknown`
 * without a figure.
 */
export function windowLevel(window) {
  const used = window?.utilization;
  const status = window?.status ?? '';
  if (status === 'rejected' || (typeof used === 'number' && used >= 1)) return 'limited';
  if (typeof used !== 'number') return 'unknown';
  if (used >= WARNING_AT || status.includes('warning')) return 'warning';
  return 'ok';
}

/** `62%` of a fraction (never rounded up to 100 % before the limit). */
export function percentText(fraction) {
  if (typeof fraction !== 'number') return '—';
  const percent = fraction * 100;
  return `${fraction < 1 ? Math.min(99, Math.round(percent)) : Math.round(percent)}%`;
}

/** `resets in 2 h 14 min, at 15:10`; `reset at 15:10, …` once it passed. */
export function resetText(resetsAt, now = Date.now()) {
  if (!resetsAt) return 'reset time not reported';
  const left = new Date(resetsAt).getTime() - now;
  const when = whenText(resetsAt, now);
  if (left <= 0) return `reset ${when}; the next reply brings the new figure`;
  return `resets in ${duration(left)}, ${when}`;
}

/** Where a subscription comes from, in words. */
export function originText(subscription) {
  return subscription.origin === 'seen' ? 'seen in traffic' : 'team credential';
}

/** The windows other than the plan's two (`7d_opus`, `7d_sonnet`, …), in order. */
export function otherWindows(windows) {
  return Object.keys(windows ?? {})
    .filter((key) => !PLAN_WINDOWS.includes(key))
    .sort((a, b) => a.localeCompare(b));
}

/** `out_of_credits` → `out of credits`. */
export function words(text) {
  return String(text ?? '').replaceAll('_', ' ');
}
