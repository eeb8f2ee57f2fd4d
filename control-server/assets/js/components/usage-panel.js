// A user's usage over the last 30 days or 12 months, prompts or tokens per
// model: two radio groups above the chart, a table of the same numbers
// below it. Data comes from `/api/admin/usage` (`group=day|month`).

import { get, query } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { periods, tabulate, usageChart, usageTable } from './chart.js';

const RANGES = { day: { days: 30, count: 30 }, month: { days: 365, count: 12 } };

function radios(name, legend, options, selected, onChange) {
  return h(
    'fieldset',
    { class: 'segmented' },
    h('legend', { class: 'visually-hidden' }, legend),
    options.map(([value, text]) => {
      const id = uid(name);
      const input = h('input', { type: 'radio', name, id, value, checked: value === selected });
      input.addEventListener('change', () => onChange(value));
      return h('span', { class: 'segmented__option' }, input, h('label', { for: id }, text));
    }),
  );
}

export class UsagePanel {
  constructor(userId) {
    this.userId = userId;
    this.kind = 'day';
    this.metric = 'prompts';
    this.cache = new Map();
    this.body = h('div', { class: 'chart' });
    this.tableHolder = h('div', { class: 'table-wrap' });
    this.summary = h('p', { class: 'muted chart__summary' });
    const controls = h(
      'div',
      { class: 'chart__controls' },
      radios(
        'chart-period',
        'Period',
        [
          ['day', 'Days'],
          ['month', 'Months'],
        ],
        this.kind,
        (v) => this.select({ kind: v }),
      ),
      radios(
        'chart-metric',
        'Measure',
        [
          ['prompts', 'Prompts'],
          ['tokens', 'Tokens'],
        ],
        this.metric,
        (v) => this.select({ metric: v }),
      ),
    );
    this.element = h(
      'section',
      { class: 'panel usage-panel', 'aria-labelledby': 'usage-title' },
      h('div', { class: 'panel__head' }, h('h2', { id: 'usage-title', class: 'panel__title' }, 'Usage'), controls),
      this.body,
      this.summary,
      h('details', { class: 'chart__details' }, h('summary', {}, 'Show as a table'), this.tableHolder),
    );
    let resizeTimer = null;
    new ResizeObserver(() => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.draw(), 100);
    }).observe(this.body);
  }

  async select(change) {
    Object.assign(this, change);
    await this.load();
  }

  /** Fetches (again, when `fresh`) the rows for the current period kind. */
  async fetch({ fresh = false } = {}) {
    if (fresh) this.cache.clear();
    if (!this.cache.has(this.kind)) {
      const range = RANGES[this.kind];
      const answer = await get(`/usage${query({ user_id: this.userId, days: range.days, group: this.kind })}`);
      this.cache.set(this.kind, answer);
    }
  }

  async load(options) {
    await this.fetch(options);
    this.draw();
  }

  draw() {
    const answer = this.cache.get(this.kind);
    if (!answer) return;
    const rows = (this.kind === 'month' ? answer.monthly : answer.daily) ?? [];
    const keys = periods(this.kind, RANGES[this.kind].count, answer.time_zone);
    const table = tabulate(rows, this.kind, this.metric);
    const width = Math.max(280, Math.floor(this.body.getBoundingClientRect().width));
    const { chart, legend, summary } = usageChart({ keys, table, kind: this.kind, metric: this.metric, width });
    replace(this.body, chart, legend);
    this.summary.textContent = `${summary} (${answer.time_zone}).`;
    replace(this.tableHolder, usageTable({ keys, table, kind: this.kind, metric: this.metric }));
  }
}
