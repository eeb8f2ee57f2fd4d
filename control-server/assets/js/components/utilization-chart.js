// A subscription's utilization over time as an SVG line chart: the 5-hour
// and the weekly window (solid line with round dots, dashed line with
// square dots), the 100 % limit, and the resets as vertical markers with a
// label. Drawn at the container's width, in the style of the usage chart
// (chart.js); a table with the same readings is the text alternative.

import { h, svg } from '../dom.js';
import { dateTime, shortTime } from '../format.js';
import { percentText, words } from '../utilization.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const HEIGHT = 210;
const PAD = { top: 22, right: 14, bottom: 28, left: 42 };
/** Readings up to this many get a dot each; more are a line only. */
const DOTS_UP_TO = 60;
const TICK_STEPS = [HOUR / 2, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 5 * DAY, 7 * DAY];
const LABEL_WIDTH = 84;

/** The history API's ranges: value, button text, words, length. */
export const RANGES = [
  { value: '3h', text: '3 h', words: '3 hours', length: 3 * HOUR },
  { value: '6h', text: '6 h', words: '6 hours', length: 6 * HOUR },
  { value: '24h', text: '24 h', words: '24 hours', length: DAY },
  { value: '7d', text: '7 d', words: '7 days', length: 7 * DAY },
  { value: '30d', text: '30 d', words: '30 days', length: 30 * DAY },
];

export const rangeOf = (value) => RANGES.find((r) => r.value === value) ?? RANGES[2];

/** The two lines: the point's field, their names, their look. */
export const SERIES = [
  { key: 'five_hour', name: '5-hour window', reset: '5h reset', modifier: 'five-hour', dot: 'circle' },
  { key: 'seven_day', name: 'Weekly window', reset: 'weekly reset', modifier: 'seven-day', dot: 'square' },
];

const seriesOfWindow = (window) => SERIES.find((s) => s.key === window) ?? SERIES[0];

function dot(shape, x, y, className, title) {
  const mark =
    shape === 'square'
      ? svg('rect', { x: x - 3, y: y - 3, width: 6, height: 6, class: className })
      : svg('circle', { cx: x, cy: y, r: 3.2, class: className });
  mark.append(svg('title', {}, title));
  return mark;
}

/** Tick times from `start` to `end`, aligned to local hours or midnights. */
function ticks(start, end, maxTicks) {
  const step = TICK_STEPS.find((s) => (end - start) / s <= maxTicks) ?? TICK_STEPS.at(-1);
  const first = new Date(start);
  first.setHours(0, 0, 0, 0);
  let at = first.getTime();
  if (step >= DAY) {
    const times = [];
    for (let day = new Date(at); day.getTime() <= end; day.setDate(day.getDate() + step / DAY)) {
      if (day.getTime() >= start) times.push(day.getTime());
    }
    return { step, times };
  }
  const times = [];
  while (at < start) at += step;
  for (; at <= end; at += step) times.push(at);
  return { step, times };
}

function tickLabel(at, step) {
  const date = new Date(at);
  if (step >= DAY) return new Intl.DateTimeFormat('en', { month: 'short', day: 'numeric' }).format(date);
  if (date.getHours() === 0 && date.getMinutes() === 0) {
    return new Intl.DateTimeFormat('en', { weekday: 'short' }).format(date);
  }
  return shortTime(date.toISOString());
}

/** Runs of consecutive readings that have a value (a missing one breaks the line). */
function runs(points, key) {
  const all = [];
  let current = [];
  for (const point of points) {
    if (typeof point[key] === 'number') {
      current.push(point);
    } else if (current.length) {
      all.push(current);
      current = [];
    }
  }
  if (current.length) all.push(current);
  return all;
}

/** `12 readings over the last 24 hours; latest at 15:10: 5-hour 62%, weekly 41%; 3 resets.` */
export function historySummary(points, resets, range) {
  const span = `the last ${rangeOf(range).words}`;
  if (!points.length) return `No readings in ${span}.`;
  const latest = points.at(-1);
  const figures = SERIES.map((s) => `${s.name.split(' ')[0].toLowerCase()} ${percentText(latest[s.key])}`);
  const count = `${points.length} reading${points.length === 1 ? '' : 's'}`;
  const resetCount = resets.length ? `${resets.length} reset${resets.length === 1 ? '' : 's'}` : 'no reset';
  return `${count} over ${span}; latest ${shortTime(latest.at)}: ${figures.join(', ')}; ${resetCount}.`;
}

/** Only readings and resets with a time, oldest first. */
export function usable(answer) {
  const points = (answer?.points ?? []).filter((p) => p.at).sort((a, b) => new Date(a.at) - new Date(b.at));
  const resets = (answer?.resets ?? []).filter((r) => r.at);
  return { points, resets };
}

/** The chart (an `svg` with an aria-label) of `points` and `resets` over `range`, `width` px wide. */
export function utilizationChart({ points, resets, range, width, now = Date.now() }) {
  const plotWidth = Math.max(60, width - PAD.left - PAD.right);
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const newest = points.length ? new Date(points.at(-1).at).getTime() : now;
  const end = Math.max(now, newest);
  const start = end - rangeOf(range).length;
  const highest = Math.max(1, ...points.flatMap((p) => SERIES.map((s) => p[s.key] ?? 0)));
  const top = Math.ceil(highest * 4) / 4;
  const x = (at) => PAD.left + ((new Date(at).getTime() - start) / (end - start)) * plotWidth;
  const y = (value) => PAD.top + plotHeight - (Math.min(value, top) / top) * plotHeight;

  const grid = [0, 0.5, ...(top > 1 ? [top] : [])].map((value) =>
    svg(
      'g',
      { class: 'chart__grid' },
      svg('line', { x1: PAD.left, x2: PAD.left + plotWidth, y1: y(value), y2: y(value) }),
      svg('text', { x: PAD.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, percentText(value)),
    ),
  );
  const limit = svg(
    'g',
    { class: 'chart__limit' },
    svg('line', { x1: PAD.left, x2: PAD.left + plotWidth, y1: y(1), y2: y(1) }),
    svg('text', { x: PAD.left - 6, y: y(1) + 4, 'text-anchor': 'end' }, '100%'),
  );

  const { step, times } = ticks(start, end, Math.max(2, Math.floor(plotWidth / 64)));
  const tickMarks = times.map((at) => {
    // A label at the right edge ends there, so it is never cut off.
    const nearEnd = x(at) > PAD.left + plotWidth - 20;
    return svg(
      'g',
      { class: 'chart__time' },
      svg('line', { x1: x(at), x2: x(at), y1: PAD.top + plotHeight, y2: PAD.top + plotHeight + 4 }),
      svg(
        'text',
        { class: 'chart__tick', x: x(at), y: HEIGHT - 8, 'text-anchor': nearEnd ? 'end' : 'middle' },
        tickLabel(at, step),
      ),
    );
  });

  // Resets: a vertical line each, and a label where it runs into no other
  // (weekly ones first: they are rarer).
  const shown = resets
    .filter((r) => new Date(r.at).getTime() >= start)
    .map((reset) => ({ reset, series: seriesOfWindow(reset.window), at: x(reset.at) }));
  const placed = [];
  const labelled = new Set();
  const byPriority = [...shown].sort((a, b) => SERIES.indexOf(b.series) - SERIES.indexOf(a.series) || a.at - b.at);
  for (const marker of byPriority) {
    const roomRight = marker.at + 3 + LABEL_WIDTH <= PAD.left + plotWidth;
    const from = roomRight ? marker.at + 3 : marker.at - 3 - LABEL_WIDTH;
    if (placed.some(([a, b]) => from < b && from + LABEL_WIDTH > a)) continue;
    placed.push([from, from + LABEL_WIDTH]);
    labelled.add(marker);
    marker.roomRight = roomRight;
  }
  const markers = shown.map((marker) => {
    const { reset, series, at } = marker;
    const label = labelled.has(marker)
      ? svg(
          'text',
          {
            class: 'reset-marker__label',
            x: marker.roomRight ? at + 3 : at - 3,
            y: PAD.top - 6,
            'text-anchor': marker.roomRight ? 'start' : 'end',
          },
          `↺ ${series.reset}`,
        )
      : null;
    return svg(
      'g',
      { class: `reset-marker reset-marker--${series.modifier}`, dataset: { window: reset.window } },
      svg('line', { x1: at, x2: at, y1: PAD.top - 2, y2: PAD.top + plotHeight }),
      label,
      svg('title', {}, `${series.name} reset ${dateTime(reset.at)}`),
    );
  });

  const lines = SERIES.map((series) => {
    const segments = runs(points, series.key).map((run) =>
      svg('polyline', {
        class: `line line--${series.modifier}`,
        points: run.map((p) => `${x(p.at).toFixed(1)},${y(p[series.key]).toFixed(1)}`).join(' '),
      }),
    );
    const withValue = points.filter((p) => typeof p[series.key] === 'number');
    const dots =
      withValue.length <= DOTS_UP_TO
        ? withValue.map((p) =>
            dot(
              series.dot,
              x(p.at),
              y(p[series.key]),
              `dot dot--${series.modifier}`,
              `${series.name} ${percentText(p[series.key])} at ${dateTime(p.at)}`,
            ),
          )
        : [];
    return svg('g', { class: `series series--${series.modifier}`, dataset: { series: series.key } }, segments, dots);
  });

  const summary = historySummary(points, resets, range);
  const chart = svg(
    'svg',
    {
      class: 'chart__svg',
      width,
      height: HEIGHT,
      viewBox: `0 0 ${width} ${HEIGHT}`,
      role: 'img',
      'aria-label': `Utilization chart: ${summary}`,
      dataset: { points: points.length, range },
    },
    grid,
    tickMarks,
    markers,
    limit,
    lines,
    svg('line', { class: 'chart__axis', x1: PAD.left, x2: PAD.left + plotWidth, y1: y(0), y2: y(0) }),
  );
  return { chart, summary };
}

function lineSwatch(modifier) {
  return svg(
    'svg',
    { class: 'line-swatch', viewBox: '0 0 28 12', 'aria-hidden': 'true' },
    svg('line', { x1: 1, x2: 27, y1: 6, y2: 6, class: modifier }),
  );
}

/** What the lines and markers are. */
export function utilizationLegend() {
  return h(
    'ul',
    { class: 'legend' },
    SERIES.map((s) => h('li', {}, lineSwatch(`line line--${s.modifier}`), s.name)),
    SERIES.map((s) => h('li', {}, lineSwatch(`reset-swatch reset-swatch--${s.modifier}`), `↺ ${s.reset}`)),
    h('li', {}, lineSwatch('limit-swatch'), '100% = the limit'),
  );
}

/** The readings as a table, newest first: the chart's text alternative. */
export function utilizationTable(points) {
  return h(
    'table',
    { class: 'table table--compact' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Time'),
        SERIES.map((s) => h('th', { scope: 'col' }, s.name)),
        h('th', { scope: 'col' }, 'Status'),
      ),
    ),
    h(
      'tbody',
      {},
      [...points].reverse().map((p) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, dateTime(p.at)),
          SERIES.map((s) => h('td', {}, percentText(p[s.key]))),
          h('td', {}, words(p.status) || '—'),
        ),
      ),
    ),
  );
}
