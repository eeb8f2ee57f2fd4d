// The usage chart: prompts or tokens per day or month, one stacked bar per
// period, one pattern per model family. Drawn as SVG at the container's
// width; a table with the same numbers is one click away.

import { h, svg } from '../dom.js';
import { compact, number } from '../format.js';
import { FAMILIES } from '../rules.js';
import { FAMILY_STYLE, familyFill, swatch } from './patterns.js';

const HEIGHT = 220;
const PAD = { top: 12, right: 8, bottom: 28, left: 44 };

/** `YYYY-MM-DD` (or `YYYY-MM`) of the last `count` periods in `timeZone`. */
export function periods(kind, count, timeZone, now = new Date()) {
  const today = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    .format(now)
    .slice(0, 10);
  const [year, month, day] = today.split('-').map(Number);
  const keys = [];
  for (let i = count - 1; i >= 0; i -= 1) {
    const date =
      kind === 'month' ? new Date(Date.UTC(year, month - 1 - i, 1)) : new Date(Date.UTC(year, month - 1, day - i));
    keys.push(date.toISOString().slice(0, kind === 'month' ? 7 : 10));
  }
  return keys;
}

export const metricValue = {
  prompts: (row) => row.count ?? 0,
  tokens: (row) =>
    (row.input_tokens ?? 0) +
    (row.output_tokens ?? 0) +
    (row.cache_creation_input_tokens ?? 0) +
    (row.cache_read_input_tokens ?? 0),
};

/** `{key → {family → value}}` from the usage API's rows. */
export function tabulate(rows, kind, metric) {
  const table = new Map();
  for (const row of rows) {
    const key = row[kind];
    if (!table.has(key)) table.set(key, {});
    const cell = table.get(key);
    cell[row.model] = (cell[row.model] ?? 0) + metricValue[metric](row);
  }
  return table;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((s) => s * magnitude >= value);
  return step * magnitude;
}

function label(key, kind) {
  const [y, m, d] = key.split('-').map(Number);
  const date = new Date(Date.UTC(y, m - 1, d ?? 1));
  const options = kind === 'month' ? { month: 'short', year: '2-digit' } : { month: 'short', day: 'numeric' };
  return new Intl.DateTimeFormat('en', { ...options, timeZone: 'UTC' }).format(date);
}

/** The chart for `keys` (periods) from `table`; `width` in px. */
export function usageChart({ keys, table, kind, metric, width }) {
  const families = FAMILIES.filter((f) => keys.some((k) => table.get(k)?.[f]));
  const totals = keys.map((k) => FAMILIES.reduce((sum, f) => sum + (table.get(k)?.[f] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotWidth = Math.max(40, width - PAD.left - PAD.right);
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotWidth / keys.length;
  const barWidth = Math.max(2, slot * 0.72);
  const y = (value) => PAD.top + plotHeight - (value / max) * plotHeight;
  const format = metric === 'tokens' ? compact : number;
  const what = metric === 'tokens' ? 'tokens' : 'prompts';
  const grid = [0, 0.5, 1].map((f) =>
    svg(
      'g',
      { class: 'chart__grid' },
      svg('line', { x1: PAD.left, x2: PAD.left + plotWidth, y1: y(max * f), y2: y(max * f) }),
      svg('text', { x: PAD.left - 6, y: y(max * f) + 4, 'text-anchor': 'end' }, format(max * f)),
    ),
  );
  const every = Math.ceil(keys.length / Math.max(1, Math.floor(plotWidth / 56)));
  const bars = keys.map((key, i) => {
    const x = PAD.left + i * slot + (slot - barWidth) / 2;
    let base = 0;
    const pieces = FAMILIES.filter((f) => table.get(key)?.[f]).map((f) => {
      const value = table.get(key)[f];
      const rect = svg(
        'rect',
        {
          x,
          width: barWidth,
          y: y(base + value),
          height: Math.max(0, y(base) - y(base + value)),
          fill: familyFill(f),
          class: 'chart__bar',
        },
        svg('title', {}, `${label(key, kind)} · ${FAMILY_STYLE[f].label}: ${number(value)} ${what}`),
      );
      base += value;
      return rect;
    });
    // Counted back from the last period, so today always has its label.
    const tick =
      (keys.length - 1 - i) % every === 0
        ? svg(
            'text',
            // The last label ends at the bar's edge, so it is never cut off.
            i === keys.length - 1
              ? { class: 'chart__tick', x: x + barWidth, y: HEIGHT - 8, 'text-anchor': 'end' }
              : { class: 'chart__tick', x: x + barWidth / 2, y: HEIGHT - 8, 'text-anchor': 'middle' },
            label(key, kind),
          )
        : null;
    return svg('g', {}, pieces, tick);
  });
  const total = totals.reduce((a, b) => a + b, 0);
  const summary = `${number(total)} ${what} over ${keys.length} ${kind === 'month' ? 'months' : 'days'}`;
  const chart = svg(
    'svg',
    {
      class: 'chart__svg',
      width,
      height: HEIGHT,
      viewBox: `0 0 ${width} ${HEIGHT}`,
      role: 'img',
      'aria-label': `Usage chart: ${summary}`,
    },
    grid,
    bars,
    svg('line', { class: 'chart__axis', x1: PAD.left, x2: PAD.left + plotWidth, y1: y(0), y2: y(0) }),
  );
  const legend = h(
    'ul',
    { class: 'legend' },
    (families.length ? families : ['opus', 'sonnet', 'haiku']).map((f) =>
      h('li', {}, swatch(f), FAMILY_STYLE[f].label),
    ),
  );
  return { chart, legend, summary, families };
}

/** The same numbers as a table, for screen readers and exact values. */
export function usageTable({ keys, table, kind, metric }) {
  const format = metric === 'tokens' ? compact : number;
  return h(
    'table',
    { class: 'table table--compact' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, kind === 'month' ? 'Month' : 'Day'),
        FAMILIES.map((f) => h('th', { scope: 'col' }, FAMILY_STYLE[f].label)),
      ),
    ),
    h(
      'tbody',
      {},
      [...keys].reverse().map((key) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, label(key, kind)),
          FAMILIES.map((f) => h('td', {}, format(table.get(key)?.[f] ?? 0))),
        ),
      ),
    ),
  );
}
