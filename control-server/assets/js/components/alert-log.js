// The Activity page's alerts: every alert the rules fired, newest first,
// with its severity (icon, word and colour), its message, the rule, and
// under it each attempt to deliver it to a channel; a failed attempt is
// marked as failed in words and shows why. Channel tests are listed too.
// Live `alert_fired` and `alert_delivery` messages add to it in place.

import { get } from '../api.js';
import { SEVERITIES, severityLabel } from '../alerts.js';
import { h, replace } from '../dom.js';
import { ago, dateTime } from '../format.js';

/** Alerts shown before "Show all". */
const FIRST = 10;
const RELOAD_DELAY_MS = 300;

export function severityBadge(severity) {
  const known = SEVERITIES[severity] ? severity : 'info';
  return h(
    'span',
    { class: `severity severity--${known}`, dataset: { severity: known } },
    h('span', { class: 'severity__icon', 'aria-hidden': 'true' }, SEVERITIES[known].icon),
    h('span', { class: 'severity__word' }, severityLabel(known)),
  );
}

function when(at) {
  return h('time', { class: 'alert-item__time', datetime: at, title: dateTime(at) }, `${dateTime(at)} · ${ago(at)}`);
}

/** An alert's attempts grouped by channel (in the order channels were added), then by attempt. */
function sortAttempts(list) {
  const key = (line) => [Number(line.dataset.channelId ?? 0), Number(line.dataset.attempt ?? 0)];
  const lines = [...list.children].sort((a, b) => {
    const [ca, aa] = key(a);
    const [cb, ab] = key(b);
    return ca - cb || aa - ab;
  });
  if (lines.some((line, index) => line !== list.children[index])) list.replaceChildren(...lines);
}

export class AlertLog {
  constructor() {
    this.channelNames = new Map();
    this.ruleNames = new Map();
    this.showAll = false;
    this.list = h('ol', { class: 'alert-list', id: 'alert-list' });
    this.empty = h(
      'p',
      { class: 'muted', hidden: true },
      'No alert yet. They appear here as the rules fire, with every attempt to deliver them.',
    );
    this.more = h('button', { type: 'button', class: 'button', hidden: true, id: 'alerts-more' }, 'Show all');
    this.more.addEventListener('click', () => {
      this.showAll = true;
      this.trim();
    });
    this.timer = null;
    this.element = h(
      'section',
      { class: 'panel alert-log', 'aria-labelledby': 'alert-log-title' },
      h('h2', { id: 'alert-log-title', class: 'panel__title' }, 'Alerts'),
      h(
        'p',
        { class: 'muted' },
        'What the alert rules raised and each attempt to deliver it, newest first. Channels and rules are set in ',
        h('a', { href: '/dashboard/settings#alerts' }, 'Settings → Alerts'),
        '.',
      ),
      h('div', { role: 'log', 'aria-label': 'Alerts', 'aria-live': 'polite' }, this.empty, this.list),
      this.more,
    );
  }

  async load() {
    const [log, { channels }, { rules }] = await Promise.all([
      get('/alerts/log'),
      get('/alerts/channels'),
      get('/alerts/rules'),
    ]);
    this.channelNames = new Map(channels.map((c) => [c.id, c.name]));
    this.ruleNames = new Map(rules.map((r) => [r.id, r.name]));
    const byAlert = new Map();
    const tests = [];
    for (const delivery of log.deliveries) {
      if (delivery.alert_id === null || delivery.alert_id === undefined) tests.push(delivery);
      else byAlert.set(delivery.alert_id, [...(byAlert.get(delivery.alert_id) ?? []), delivery]);
    }
    const items = [
      ...log.alerts.map((alert) => ({ at: alert.at, node: this.alertItem(alert, byAlert.get(alert.id) ?? []) })),
      ...tests.map((delivery) => ({ at: delivery.at, node: this.testItem(delivery) })),
    ].sort((a, b) => new Date(b.at) - new Date(a.at));
    replace(
      this.list,
      items.map((item) => item.node),
    );
    this.trim();
  }

  /** Loads again soon (once for a burst): after a reconnect, or news about an alert not shown. */
  reloadSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load().catch(() => {}), RELOAD_DELAY_MS);
  }

  trim() {
    [...this.list.children].forEach((item, index) => {
      item.hidden = !this.showAll && index >= FIRST;
    });
    this.more.hidden = this.showAll || this.list.children.length <= FIRST;
    this.more.textContent = `Show all ${this.list.children.length}`;
    this.empty.hidden = this.list.children.length > 0;
  }

  channelName(id) {
    return this.channelNames.get(id) ?? `channel ${id}`;
  }

  alertItem(alert, deliveries, fresh = false) {
    const rule = alert.rule_id ? (this.ruleNames.get(alert.rule_id) ?? `rule ${alert.rule_id}`) : null;
    const attempts = h('ul', { class: 'deliveries', 'aria-label': 'Delivery attempts' });
    const item = h(
      'li',
      {
        class: `alert-item alert-item--${alert.severity}${fresh ? ' alert-item--fresh' : ''}`,
        dataset: { alertId: alert.id, severity: alert.severity },
      },
      h(
        'div',
        { class: 'alert-item__head' },
        severityBadge(alert.severity),
        h('strong', { class: 'alert-item__title' }, alert.title),
      ),
      h('p', { class: 'alert-item__message' }, alert.message),
      h('p', { class: 'alert-item__meta muted' }, when(alert.at), rule ? ` · rule: ${rule}` : ''),
      attempts,
    );
    for (const delivery of deliveries) attempts.append(this.deliveryLine(delivery));
    sortAttempts(attempts);
    this.noteUndelivered(item);
    return item;
  }

  /** An alert without any attempt says so (it went to no channel, or is on its way). */
  noteUndelivered(item) {
    const attempts = item.querySelector('.deliveries');
    const none = attempts.querySelector('.delivery--none');
    if (attempts.querySelector('.delivery:not(.delivery--none)')) none?.remove();
    else if (!none) {
      attempts.append(
        h('li', { class: 'delivery delivery--none muted' }, 'Not sent to any channel (yet): listed here only.'),
      );
    }
  }

  deliveryLine(delivery) {
    const channel = this.channelName(delivery.channel_id);
    return h(
      'li',
      {
        class: `delivery delivery--${delivery.ok ? 'ok' : 'failed'}`,
        dataset: { ok: String(delivery.ok), channelId: delivery.channel_id, attempt: delivery.attempt },
      },
      h('span', { class: 'delivery__mark', 'aria-hidden': 'true' }, delivery.ok ? '✓' : '✕'),
      h(
        'span',
        { class: 'delivery__text' },
        h('strong', {}, delivery.ok ? 'Delivered' : 'Failed'),
        ` to ${channel} (attempt ${delivery.attempt}): `,
        delivery.detail,
      ),
    );
  }

  testItem(delivery, fresh = false) {
    return h(
      'li',
      {
        class: `alert-item alert-item--test${fresh ? ' alert-item--fresh' : ''}`,
        dataset: { test: 'true', channelId: delivery.channel_id },
      },
      h(
        'div',
        { class: 'alert-item__head' },
        h('span', { class: 'severity severity--test' }, h('span', { class: 'severity__word' }, 'Test')),
        h('strong', { class: 'alert-item__title' }, `Test message to ${this.channelName(delivery.channel_id)}`),
      ),
      h('p', { class: 'alert-item__meta muted' }, when(delivery.at)),
      h('ul', { class: 'deliveries', 'aria-label': 'Delivery attempts' }, this.deliveryLine(delivery)),
    );
  }

  /** A live `alert_fired` message. */
  fired(message) {
    if (this.list.querySelector(`[data-alert-id="${message.alertId}"]`)) return;
    const alert = {
      id: message.alertId,
      rule_id: message.ruleId,
      at: message.timestamp,
      severity: message.severity,
      title: message.title,
      message: message.message,
    };
    if (alert.rule_id && !this.ruleNames.has(alert.rule_id)) this.reloadSoon();
    this.list.prepend(this.alertItem(alert, [], true));
    this.trim();
  }

  /** A live `alert_delivery` message: under its alert, or a channel test of its own. */
  delivered(message) {
    const delivery = {
      alert_id: message.alertId,
      channel_id: message.channelId,
      at: message.timestamp,
      attempt: message.attempt,
      ok: message.ok,
      detail: message.detail,
    };
    if (!this.channelNames.has(delivery.channel_id)) this.reloadSoon();
    if (delivery.alert_id === null || delivery.alert_id === undefined) {
      this.list.prepend(this.testItem(delivery, true));
      this.trim();
      return;
    }
    const item = this.list.querySelector(`[data-alert-id="${delivery.alert_id}"]`);
    if (!item) {
      this.reloadSoon();
      return;
    }
    const attempts = item.querySelector('.deliveries');
    const key = `[data-channel-id="${delivery.channel_id}"][data-attempt="${delivery.attempt}"]`;
    if (attempts.querySelector(key)) return;
    attempts.append(this.deliveryLine(delivery));
    sortAttempts(attempts);
    this.noteUndelivered(item);
  }
}
