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

/** The shares API's window names (`five_hour`, `seven_day`) as header keys. */
export const SHARE_WINDOW_KEYS = { five_hour: '5h', seven_day: '7d' };

const THIS_WINDOW = { five_hour: 'this 5-hour window', seven_day: 'this weekly window' };
const OF_PERSON_WINDOW = { five_hour: 'this 5-hour window', seven_day: 'the week' };

/** `this 5-hour window`, `this weekly window`. */
export const thisWindow = (window) => THIS_WINDOW[window] ?? window;

/**
 * A share of a window (a fraction) as people read it: `38 %`, `under 1 %`
 * for a trace, `0 %` for none. Never `100 %` below the whole window.
 */
export function shareText(fraction) {
  const percent = Math.max(0, fraction ?? 0) * 100;
  if (percent > 0 && percent < 0.5) return 'under 1 %';
  const whole = percent < 100 ? Math.min(99, Math.round(percent)) : Math.round(percent);
  return `${whole} %`;
}

/** The same from hundredths of a percent (`used_bp`: 3800 is 38 %). */
export const basisPointsText = (bp) => shareText((bp ?? 0) / 10_000);

/** Above this fraction of a window, use outside ccgate is worth showing. */
export const UNATTRIBUTED_SHOWN_FROM = 0.005;

/**
 * A person's `window_shares` in one phrase: `38 % of this 5-hour window,
 * 12 % of the week` (the 5-hour window first); empty without figures.
 */
export function personSharesText(windowShares) {
  const order = ['five_hour', 'seven_day'];
  return [...(windowShares ?? [])]
    .sort((a, b) => order.indexOf(a.window) - order.indexOf(b.window))
    .map((share) => `${basisPointsText(share.used_bp)} of ${OF_PERSON_WINDOW[share.window] ?? share.window}`)
    .join(', ');
}
