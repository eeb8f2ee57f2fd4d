// A user's limits as meters, from the usage report the users API includes
// (`report.limits`: each counting rule with its use in the current window,
// `report.schedules`: time-of-day rules, open or closed now, and
// `report.shares`: share rules against the person's estimated share of the
// subscription's window).

import { h } from '../dom.js';
import { compact, countdown, number } from '../format.js';
import { metricLabel, shareWindowLabel, windowLabel } from '../rules.js';
import { basisPointsText } from '../utilization.js';
import { usageMeter } from './meter.js';

function resetNote(line) {
  if (line.resets_at) return `resets ${countdown(line.resets_at)}`;
  if (line.frees_at) return `frees up ${countdown(line.frees_at)}`;
  return '';
}

/** One meter per counting rule; `only` filters the lines (e.g. no credits). */
export function limitMeters(report, { only = () => true, withWindow = true } = {}) {
  return (report?.limits ?? []).filter(only).map((line) => {
    const tokens = typeof line.metric === 'object';
    return usageMeter({
      label: withWindow ? `${metricLabel(line.rule)} ${windowLabel(line.window)}` : metricLabel(line.rule),
      used: line.used,
      limit: line.limit,
      note: resetNote(line),
      format: tokens ? compact : number,
    });
  });
}

/**
 * One meter per share rule: `38 % / 40 %` of the subscription's window,
 * or that there is no estimate yet.
 */
export function shareMeters(report) {
  return (report?.shares ?? []).map((line) => {
    const known = line.used_bp !== null && line.used_bp !== undefined;
    return usageMeter({
      label: `Share of the subscription’s ${shareWindowLabel(line.window)}`,
      used: known ? line.used_bp / 100 : 0,
      limit: line.percent,
      amountText: known
        ? `${basisPointsText(line.used_bp)} / ${line.percent} %`
        : `no estimate yet · limit ${line.percent} %`,
      note: line.resets_at ? `resets ${countdown(line.resets_at)}` : '',
    });
  });
}

/** Time-of-day rules: open or closed now, and until when. */
export function scheduleList(report) {
  const schedules = report?.schedules ?? [];
  if (schedules.length === 0) return null;
  return h(
    'ul',
    { class: 'schedules' },
    schedules.map((s) =>
      h(
        'li',
        { class: `schedule schedule--${s.open_now ? 'open' : 'closed'}` },
        h('span', { class: 'schedule__icon', 'aria-hidden': 'true' }, s.open_now ? '◷' : '⊘'),
        `${s.family ? s.family[0].toUpperCase() + s.family.slice(1) : 'All models'} `,
        `${s.rule.schedule_start}–${s.rule.schedule_end} (${s.time_zone}): `,
        h('strong', {}, s.open_now ? 'open' : 'closed'),
        s.next_change ? ` · ${s.open_now ? 'closes' : 'opens'} ${countdown(s.next_change)}` : '',
      ),
    ),
  );
}

/** Total tokens of a `today` totals object (all four kinds). */
export function tokenTotal(totals) {
  if (!totals) return 0;
  return (
    (totals.input_tokens ?? 0) +
    (totals.output_tokens ?? 0) +
    (totals.cache_creation_input_tokens ?? 0) +
    (totals.cache_read_input_tokens ?? 0)
  );
}

/** The tightest credit line's window, e.g. `per day`. */
export function creditWindow(report) {
  const credits = (report?.limits ?? []).filter((l) => l.metric === 'credits' && l.limit !== -1);
  credits.sort((a, b) => (a.remaining ?? Infinity) - (b.remaining ?? Infinity));
  return credits[0] ? windowLabel(credits[0].window) : '';
}
