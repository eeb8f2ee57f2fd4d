// The subscription's own utilization (5-hour and weekly windows, from the
// `anthropic-ratelimit-unified-*` headers the proxies report), with reset
// countdowns that tick while the page is open.

import { h, replace } from '../dom.js';
import { ago, countdown } from '../format.js';
import { usageMeter } from './meter.js';

const NAMES = { '5h': '5-hour window', '7d': 'Weekly window' };
const TICK_MS = 15_000;

function windowName(key) {
  if (NAMES[key]) return NAMES[key];
  const [period, model] = key.split('_');
  return `${NAMES[period] ?? key}${model ? ` (${model})` : ''}`;
}

function order(a, b) {
  const rank = (key) => (key === '5h' ? 0 : key === '7d' ? 1 : 2);
  return rank(a) - rank(b) || a.localeCompare(b);
}

export class SubscriptionPanel {
  constructor() {
    this.body = h('div', { class: 'subscription__body' });
    this.element = h(
      'section',
      { class: 'panel subscription', 'aria-labelledby': 'subscription-title' },
      h('h2', { id: 'subscription-title', class: 'panel__title' }, 'Subscription'),
      this.body,
    );
    this.data = null;
    setInterval(() => this.render(), TICK_MS);
  }

  update(subscription) {
    this.data = subscription;
    this.render();
  }

  render() {
    const sub = this.data;
    if (!sub) {
      replace(
        this.body,
        h('p', { class: 'muted' }, 'No utilization reported yet: it arrives with the first reply a proxy sees.'),
      );
      return;
    }
    const keys = Object.keys(sub.windows ?? {}).sort(order);
    const meters = keys.map((key) => {
      const w = sub.windows[key];
      const used = Math.round((w.utilization ?? 0) * 100);
      return usageMeter({
        label: windowName(key),
        used,
        limit: 100,
        amountText: `${used}% used`,
        note: w.resets_at ? `resets ${countdown(w.resets_at)}` : '',
      });
    });
    const status = sub.status ? `Status: ${sub.status}` : null;
    replace(
      this.body,
      meters.length ? meters : h('p', { class: 'muted' }, 'The last report named no windows.'),
      h(
        'p',
        { class: 'subscription__meta muted' },
        [status, `reported ${ago(sub.observed_at)}`].filter(Boolean).join(' · '),
      ),
    );
  }
}
