// The overview's subscriptions: one card per subscription (side by side when
// there is room), from `/api/admin/subscriptions`. A live `subscription`
// message (a new reading) or `subscription_changed` fetches the list again,
// a quarter of a second later so that a burst costs one request, and once
// more when the server has shared the new reading among people (it does so
// half a second after readings arrive); the reset countdowns tick while the
// page is open.

import { get } from '../api.js';
import { h } from '../dom.js';
import { NO_READING_YET, SubscriptionCard } from './subscription-card.js';

const REFRESH_DELAY_MS = 250;
/** The server attributes readings 0.5 s after they settle: then the shares are new. */
const SHARES_DELAY_MS = 1500;
const TICK_MS = 15_000;

export class SubscriptionUsage {
  constructor() {
    this.cards = new Map();
    this.list = h('div', { class: 'subscription-cards', id: 'subscription-cards' });
    this.empty = h('p', { class: 'muted subscription-usage__empty', hidden: true }, NO_READING_YET);
    this.element = h(
      'section',
      { class: 'subscription-usage', id: 'subscription-usage', 'aria-labelledby': 'subscription-usage-title' },
      h('h2', { id: 'subscription-usage-title', class: 'section-title' }, 'Subscriptions'),
      this.empty,
      this.list,
    );
    this.timer = null;
    this.sharesTimer = null;
    this.serial = 0;
    setInterval(() => {
      for (const card of this.cards.values()) card.render();
    }, TICK_MS);
  }

  /** Fetches the list and shows it; an answer older than a newer one is dropped. */
  async load() {
    const serial = ++this.serial;
    const { subscriptions } = await get('/subscriptions');
    if (serial === this.serial) this.show(subscriptions);
  }

  /**
   * Loads again soon: once for any number of calls within the delay, and
   * again after the shares of the new readings are computed.
   */
  refreshSoon() {
    clearTimeout(this.sharesTimer);
    this.sharesTimer = setTimeout(() => this.load().catch(() => {}), SHARES_DELAY_MS);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load().catch(() => {});
    }, REFRESH_DELAY_MS);
  }

  show(subscriptions) {
    const ids = new Set(subscriptions.map((s) => s.id));
    for (const [id, card] of this.cards) {
      if (!ids.has(id)) {
        card.element.remove();
        this.cards.delete(id);
      }
    }
    for (const subscription of subscriptions) {
      const card = this.cards.get(subscription.id);
      if (card) card.update(subscription);
      else this.cards.set(subscription.id, new SubscriptionCard(subscription));
    }
    // In the list's order. Cards are moved only when the order changed: a
    // moved node loses the focus (say, on a range button of an open history).
    const wanted = subscriptions.map((s) => this.cards.get(s.id).element);
    const same = wanted.length === this.list.children.length && wanted.every((e, i) => this.list.children[i] === e);
    if (!same) this.list.replaceChildren(...wanted);
    this.empty.hidden = subscriptions.length > 0;
    this.element.dataset.count = String(subscriptions.length);
  }
}
