// One subscription on the overview: its name and where it comes from (team
// credential or seen in traffic), the 5-hour and weekly gauges with their
// resets, the per-model buckets, overage, who used each window (people's
// estimated shares and use outside ccgate), and a button that opens its
// history chart inside the card. `update` redraws the figures and keeps an
// open history (reloading it when there is a new reading).

import { h, replace, uid } from '../dom.js';
import { ago, dateTime, number } from '../format.js';
import { PLAN_WINDOWS, originText, words } from '../utilization.js';
import { HistoryPanel } from './history-panel.js';
import { utilizationGauge } from './utilization-gauge.js';
import { windowBars } from './window-bars.js';
import { windowShares } from './window-shares.js';

export const NO_READING_YET = 'No utilization seen yet: it appears with the first reply through a ccgate proxy.';

const people = (n) => `${number(n)} ${n === 1 ? 'person' : 'people'}`;

/** `Extra usage: rejected (out of credits)`, or null without overage headers. */
function overageLine(latest) {
  if (!latest.overage_status && !latest.overage_reason) return null;
  const reason = latest.overage_reason ? ` (${words(latest.overage_reason)})` : '';
  return h(
    'p',
    { class: 'subscription-card__overage', dataset: { overage: latest.overage_status ?? '' } },
    h('span', { class: 'subscription-card__fact' }, 'Extra usage: '),
    `${words(latest.overage_status ?? 'unknown')}${reason}`,
  );
}

function fallbackLine(latest) {
  if (!latest.fallback) return null;
  return h(
    'p',
    { class: 'subscription-card__overage' },
    h('span', { class: 'subscription-card__fact' }, 'Fallback: '),
    words(latest.fallback),
  );
}

export class SubscriptionCard {
  constructor(subscription) {
    this.titleId = uid('subscription-name');
    this.title = h('h3', { class: 'card__title', id: this.titleId });
    this.origin = h('span', { class: 'origin-tag' });
    this.meta = h('p', { class: 'muted subscription-card__meta' });
    this.figures = h('div', { class: 'subscription-card__figures' });
    this.historyId = uid('subscription-history');
    this.historyHolder = h('div', { id: this.historyId, class: 'subscription-card__history', hidden: true });
    this.toggle = h(
      'button',
      {
        type: 'button',
        class: 'button button--quiet history-toggle',
        'aria-expanded': 'false',
        'aria-controls': this.historyId,
      },
      'Show history',
    );
    this.toggle.addEventListener('click', () => this.setHistoryOpen(this.historyHolder.hidden));
    this.history = null;
    this.element = h(
      'article',
      { class: 'card subscription-card', 'aria-labelledby': this.titleId },
      h('div', { class: 'card__head' }, this.title, this.origin),
      this.meta,
      this.figures,
      this.toggle,
      this.historyHolder,
    );
    this.update(subscription);
  }

  /** Shows `subscription` (a row of `/api/admin/subscriptions`). */
  update(subscription) {
    const fresh = subscription.latest?.observed_at !== this.data?.latest?.observed_at;
    this.data = subscription;
    const element = this.element;
    element.dataset.subscriptionId = subscription.id;
    element.dataset.origin = subscription.origin;
    this.title.textContent = subscription.name;
    this.origin.textContent = originText(subscription);
    this.origin.dataset.origin = subscription.origin;
    this.history?.rename(subscription.name);
    this.render();
    if (fresh && this.history && !this.historyHolder.hidden) this.history.load().catch(() => {});
  }

  /** Redraws the figures (the countdowns move on). */
  render(now = Date.now()) {
    const sub = this.data;
    const latest = sub.latest;
    this.toggle.hidden = !latest;
    if (!latest) {
      this.meta.textContent = `${people(sub.users)}`;
      replace(this.figures, h('p', { class: 'muted subscription-card__empty' }, NO_READING_YET));
      return;
    }
    replace(
      this.meta,
      `${people(sub.users)} · reported `,
      h('time', { datetime: latest.observed_at, title: dateTime(latest.observed_at) }, ago(latest.observed_at, now)),
      latest.status ? ` · Anthropic says ${words(latest.status)}` : '',
    );
    const windows = latest.windows ?? {};
    replace(
      this.figures,
      h(
        'div',
        { class: 'subscription-card__gauges' },
        PLAN_WINDOWS.map((key) => utilizationGauge(key, windows[key], now)),
      ),
      windowBars(windows, now),
      overageLine(latest),
      fallbackLine(latest),
      windowShares(sub.windows),
    );
  }

  setHistoryOpen(open) {
    this.historyHolder.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
    this.toggle.textContent = open ? 'Hide history' : 'Show history';
    if (open && !this.history) {
      this.history = new HistoryPanel(this.data);
      replace(this.historyHolder, this.history.element);
      this.history.load().catch(() => {});
    } else if (open) {
      this.history.load().catch(() => {});
    }
  }
}
