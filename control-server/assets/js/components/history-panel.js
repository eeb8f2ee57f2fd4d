// A subscription's utilization history: range buttons (3 h … 30 d, real
// buttons with aria-pressed), the line chart, a sentence with the latest
// figures (announced when it changes) and the readings as a table. Data
// comes from `/api/admin/subscriptions/:id/history?range=…`, fetched again
// on every range switch and whenever the overview says there is a new one.

import { get, query } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { RANGES, rangeOf, usable, utilizationChart, utilizationLegend, utilizationTable } from './utilization-chart.js';

const DEFAULT_RANGE = '24h';

export class HistoryPanel {
  constructor(subscription) {
    this.id = subscription.id;
    this.range = DEFAULT_RANGE;
    this.answer = null;
    this.serial = 0;
    this.buttons = RANGES.map((range) => {
      const button = h(
        'button',
        {
          type: 'button',
          class: 'range-button',
          dataset: { range: range.value },
          'aria-pressed': String(range.value === this.range),
          'aria-label': `Last ${range.words}`,
        },
        range.text,
      );
      button.addEventListener('click', () => this.select(range.value));
      return button;
    });
    this.plot = h('div', { class: 'chart history__plot' });
    this.summary = h('p', { class: 'muted chart__summary history__summary', 'aria-live': 'polite' });
    this.tableHolder = h('div', { class: 'table-wrap history__table' });
    this.details = h(
      'details',
      { class: 'chart__details' },
      h('summary', {}, 'Show the readings as a table'),
      this.tableHolder,
    );
    // The table is built when someone opens it: a month can hold a thousand readings.
    this.details.addEventListener('toggle', () => this.fillTable());
    this.group = h('div', { class: 'range-buttons', role: 'group' }, this.buttons);
    const titleId = uid('history-title');
    this.titleText = h('span', {}, subscription.name);
    this.element = h(
      'section',
      { class: 'history', 'aria-labelledby': titleId, dataset: { subscriptionId: subscription.id } },
      h(
        'div',
        { class: 'history__head' },
        h(
          'h4',
          { id: titleId, class: 'history__title' },
          'History',
          h('span', { class: 'visually-hidden' }, ' of ', this.titleText),
        ),
        this.group,
      ),
      this.plot,
      utilizationLegend(),
      this.summary,
      this.details,
    );
    let resizeTimer = null;
    this.lastWidth = 0;
    new ResizeObserver(() => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (this.width() !== this.lastWidth) this.draw();
      }, 100);
    }).observe(this.plot);
    this.rename(subscription.name);
  }

  rename(name) {
    this.titleText.textContent = name;
    this.group.setAttribute('aria-label', `History range of ${name}`);
  }

  width() {
    return Math.max(240, Math.floor(this.plot.getBoundingClientRect().width));
  }

  async select(range) {
    if (range === this.range && this.answer) return;
    this.range = range;
    for (const button of this.buttons) button.setAttribute('aria-pressed', String(button.dataset.range === range));
    await this.load();
  }

  /** Fetches the current range (again) and draws it; a late answer for an old range is dropped. */
  async load() {
    const serial = ++this.serial;
    const range = this.range;
    this.plot.setAttribute('aria-busy', 'true');
    try {
      const answer = await get(`/subscriptions/${this.id}/history${query({ range })}`);
      if (serial !== this.serial) return;
      this.answer = answer;
      this.draw();
    } catch (error) {
      if (serial !== this.serial) return;
      this.answer = null;
      replace(this.plot, h('p', { class: 'form__problem' }, error.message));
      this.summary.textContent = '';
    } finally {
      if (serial === this.serial) this.plot.removeAttribute('aria-busy');
    }
  }

  draw() {
    if (!this.answer) return;
    const { points, resets } = usable(this.answer);
    const range = this.answer.range ?? this.range;
    this.lastWidth = this.width();
    const { chart, summary } = utilizationChart({ points, resets, range, width: this.lastWidth });
    replace(this.plot, chart);
    Object.assign(this.plot.dataset, { range, points: points.length });
    this.summary.textContent = summary;
    this.tableHolder.replaceChildren();
    this.fillTable();
  }

  fillTable() {
    if (!this.details.open || !this.answer || this.tableHolder.firstChild) return;
    const { points } = usable(this.answer);
    replace(
      this.tableHolder,
      points.length
        ? utilizationTable(points)
        : h('p', { class: 'muted' }, `No readings in the last ${rangeOf(this.range).words}.`),
    );
  }
}
