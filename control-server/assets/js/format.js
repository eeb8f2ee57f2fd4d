// Numbers, times and durations as people read them.

const whole = new Intl.NumberFormat('en');
const compactNumber = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const dateTimeFormat = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });
const timeFormat = new Intl.DateTimeFormat('en', { timeStyle: 'medium' });
const hourMinute = new Intl.DateTimeFormat('en', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const weekdayHourMinute = new Intl.DateTimeFormat('en', {
  weekday: 'short',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
});
const dayHourMinute = new Intl.DateTimeFormat('en', {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
});

export const number = (n) => whole.format(n ?? 0);
export const compact = (n) => compactNumber.format(n ?? 0);

/** `-1` is unlimited, `0` forbidden (the rules' sentinels). */
export function limitValue(value) {
  if (value === -1) return 'unlimited';
  if (value === 0) return 'forbidden';
  return number(value);
}

export function dateTime(iso) {
  return iso ? dateTimeFormat.format(new Date(iso)) : '—';
}

export function clockTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : '';
}

/** `15:10` (24-hour, local). */
export function shortTime(iso) {
  return iso ? hourMinute.format(new Date(iso)) : '';
}

/**
 * When `iso` is, as briefly as it stays clear from `now`: `at 15:10` today,
 * `on Fri 15:10` within the week, `on Mar 3, 15:10` further off.
 */
export function whenText(iso, now = Date.now()) {
  if (!iso) return '';
  const date = new Date(iso);
  const sameDay = new Date(now).toDateString() === date.toDateString();
  if (sameDay) return `at ${hourMinute.format(date)}`;
  const days = Math.abs(date.getTime() - now) / 86_400_000;
  return `on ${(days < 6 ? weekdayHourMinute : dayHourMinute).format(date)}`;
}

/** `3 h 12 min`, `45 s`, `2 d 4 h`: at most two units. */
export function duration(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const units = [
    ['d', 86400],
    ['h', 3600],
    ['min', 60],
    ['s', 1],
  ];
  const parts = [];
  let rest = seconds;
  for (const [name, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0 || (parts.length === 0 && size === 1)) {
      parts.push(`${count} ${name}`);
      rest -= count * size;
    }
    if (parts.length === 2) break;
    if (parts.length === 1 && count === 0) break;
  }
  return parts.join(' ');
}

/** `in 2 h 5 min` (or `now` when past). */
export function countdown(iso, now = Date.now()) {
  if (!iso) return '';
  const left = new Date(iso).getTime() - now;
  return left <= 0 ? 'now' : `in ${duration(left)}`;
}

/** `3 min ago`, `just now`, `never`. */
export function ago(iso, now = Date.now()) {
  if (!iso) return 'never';
  const past = now - new Date(iso).getTime();
  if (past < 45_000) return 'just now';
  return `${duration(past).split(' ').slice(0, 2).join(' ')} ago`;
}

export function percent(fraction) {
  return `${Math.round((fraction ?? 0) * 100)}%`;
}

export function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : '';
}
