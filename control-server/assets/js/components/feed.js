// The live event feed: prompts, blocks, kills, status changes, tamper
// alerts, new devices, replies metered by estimate, fired alerts and use
// outside ccgate, newest first. Items
// come from live `/ws` messages and, at page load, from the stored events
// and audit log.

import { h } from '../dom.js';
import { severityLabel } from '../alerts.js';
import { clockTime, dateTime, number } from '../format.js';
import { countReasonLabel, reasonLabel } from '../rules.js';
import { shareText, thisWindow } from '../utilization.js';

const MAX_ITEMS = 60;

const KINDS = {
  prompt: ['›', 'Prompt'],
  blocked: ['⊘', 'Blocked'],
  killed: ['✕', 'Killed'],
  status: ['⇄', 'Status'],
  tamper: ['⚠', 'Tamper'],
  fault: ['⚠', 'Held back'],
  device: ['+', 'Device'],
  estimate: ['≈', 'Estimated'],
  alert: ['⚑', 'Alert'],
  outside: ['◌', 'Outside'],
};

const credits = (n) => `${n ?? 0} credit${n === 1 ? '' : 's'}`;
const family = (name) => (name ? name[0].toUpperCase() + name.slice(1) : 'Unknown model');

/**
 * `≈ 1,234 output tokens (estimated)`: the proxy's figure for a reply cut
 * before its usage arrived (input tokens for one abandoned before any).
 */
export function estimateText(usage) {
  const output = usage.output_tokens ?? 0;
  const input = usage.input_tokens ?? 0;
  const figure = output > 0 || input === 0 ? `${number(output)} output tokens` : `${number(input)} input tokens`;
  return `≈ ${figure} (estimated)`;
}

/** A counted prompt: model, credits, why it counted (unless a plain new prompt), any estimate. */
function promptText(familyName, creditCost, { reason, estimated, usage }) {
  const parts = [family(familyName), credits(creditCost)];
  if (reason && reason !== 'new_prompt') parts.push(countReasonLabel(reason));
  if (estimated) parts.push(estimateText(usage));
  return parts.join(' · ');
}

function faultText(detail) {
  const d = detail ?? {};
  const n = d.quarantined ?? 0;
  return `holds back ${number(n)} event${n === 1 ? '' : 's'} the server refused · ${d.reason ?? 'no reason given'}`;
}

function tamperText(detail) {
  const d = detail ?? {};
  const outcome = d.restored ? 'restored' : 'NOT restored';
  return `${d.path ?? 'a file'} ${d.what ?? 'changed'} · ${outcome}`;
}

/**
 * A feed item from a live message, or null for messages the feed skips;
 * `subscriptionName(id)` names a subscription when the page knows it.
 */
export function fromLive(message, { subscriptionName = () => null } = {}) {
  const user = message.userName ?? `user ${message.userId}`;
  const base = { at: message.timestamp, userId: message.userId, user, host: message.hostname };
  switch (message.type) {
    case 'user_counted':
      return {
        ...base,
        kind: 'prompt',
        text: promptText(message.family, message.creditCost, {
          reason: message.countReason,
          estimated: message.estimated,
          usage: message,
        }),
      };
    case 'usage':
      if (!message.estimated || message.counted) return null;
      return { ...base, kind: 'estimate', text: `${family(message.family)} · ${estimateText(message)}` };
    case 'user_blocked':
      return { ...base, kind: 'blocked', text: `${family(message.family)} · ${reasonLabel(message.reason)}` };
    case 'user_killed':
      return { ...base, kind: 'killed', text: 'access revoked, devices logged out' };
    case 'user_status_change':
      if (message.newStatus === 'killed') return null;
      return { ...base, kind: 'status', text: `${message.oldStatus} → ${message.newStatus}` };
    case 'tamper':
      return { ...base, kind: 'tamper', text: tamperText(message.detail) };
    case 'delivery_fault':
      return { ...base, kind: 'fault', text: faultText(message) };
    case 'device_registered':
      return { ...base, kind: 'device', text: `registered ${message.hostname ?? 'a device'}` };
    case 'device_revoked':
      return { ...base, kind: 'device', text: `revoked ${message.hostname ?? 'a device'}` };
    case 'alert_fired':
      return {
        at: message.timestamp,
        kind: 'alert',
        severity: message.severity,
        text: `${severityLabel(message.severity)}: ${message.title}`,
      };
    case 'unattributed_use': {
      const name = subscriptionName(message.subscriptionId) ?? `Subscription ${message.subscriptionId}`;
      return {
        at: message.timestamp,
        kind: 'outside',
        text: `${name}: ${shareText(message.amount)} of ${thisWindow(message.window)} used outside ccgate`,
      };
    }
    default:
      return null;
  }
}

/** A feed item from a stored event (`/api/admin/events`), or null. */
export function fromEvent(event, users) {
  const owner = users.get(event.user_id);
  const user = owner?.name ?? `user ${event.user_id}`;
  const host = owner?.devices?.find((d) => d.id === event.device_id)?.hostname;
  const base = { at: event.at, userId: event.user_id, user, host };
  if (event.type === 'request' && event.prompts > 0) {
    const details = { reason: event.count_reason, estimated: event.estimated, usage: event };
    return { ...base, kind: 'prompt', text: promptText(event.family, event.credits, details) };
  }
  if (event.type === 'request' && event.estimated) {
    return { ...base, kind: 'estimate', text: `${family(event.family)} · ${estimateText(event)}` };
  }
  if (event.type === 'blocked') {
    return { ...base, kind: 'blocked', text: `${family(event.family)} · ${reasonLabel(event.detail?.reason)}` };
  }
  if (event.type === 'tamper') return { ...base, kind: 'tamper', text: tamperText(event.detail) };
  if (event.type === 'delivery_fault') return { ...base, kind: 'fault', text: faultText(event.detail) };
  return null;
}

/** A feed item from an audit entry (kills only), or null. */
export function fromAudit(entry, users) {
  if (entry.kind !== 'user_killed') return null;
  const user = users.get(entry.user_id)?.name ?? `user ${entry.user_id}`;
  return { at: entry.at, userId: entry.user_id, user, kind: 'killed', text: `by ${entry.actor ?? 'an admin'}` };
}

export class Feed {
  constructor() {
    this.list = h('ol', { class: 'feed__list', id: 'live-feed' });
    this.empty = h(
      'p',
      { class: 'feed__empty' },
      'Nothing yet. Prompts, blocks, kills and tamper alerts appear here as they happen.',
    );
    this.element = h('div', { class: 'feed', role: 'log', 'aria-label': 'Live events' }, this.empty, this.list);
  }

  /** Adds items (any order); the newest stays on top. */
  add(items, { fresh = false } = {}) {
    const sorted = items.filter(Boolean).sort((a, b) => new Date(a.at) - new Date(b.at));
    for (const item of sorted) this.list.prepend(this.row(item, fresh));
    while (this.list.children.length > MAX_ITEMS) this.list.lastElementChild.remove();
    this.empty.hidden = this.list.children.length > 0;
  }

  row(item, fresh) {
    const [icon, label] = KINDS[item.kind];
    return h(
      'li',
      {
        class: `feed__item feed__item--${item.kind}${fresh ? ' feed__item--fresh' : ''}`,
        dataset: { kind: item.kind, severity: item.severity },
      },
      h('span', { class: 'feed__icon', 'aria-hidden': 'true' }, icon),
      h('span', { class: 'feed__kind' }, label),
      h('time', { class: 'feed__time', datetime: item.at, title: dateTime(item.at) }, clockTime(item.at)),
      h(
        'span',
        { class: 'feed__text' },
        item.userId ? h('a', { href: `/dashboard/users/${item.userId}` }, item.user) : item.user,
        item.host ? h('span', { class: 'feed__host' }, ` on ${item.host}`) : null,
        item.user ? ` · ${item.text}` : item.text,
      ),
    );
  }
}
