// Alerts in words: the channel kinds with the settings each needs (which of
// them are secrets), what a rule watches (its `condition`, tagged by
// `type`) as a sentence, its fields and the checks the server makes, the
// severities, and a rule's channels and cooldown in words.

import { duration } from './format.js';

/** What the API shows instead of a stored secret, and sends back to keep it. */
export const REDACTED = '••••';

/**
 * Each kind of channel and its settings: `name` is the config's field,
 * `type` one of text, url, secret, number, select, list (one address a
 * line), headers (name and secret value pairs) and template (a textarea);
 * `optional` fields may stay empty.
 */
export const CHANNEL_KINDS = [
  {
    kind: 'slack',
    label: 'Slack',
    fields: [
      {
        name: 'webhook_url',
        label: 'Webhook URL',
        type: 'secret',
        hint: 'An incoming webhook: https://hooks.slack.com/services/…',
      },
    ],
  },
  {
    kind: 'discord',
    label: 'Discord',
    fields: [
      {
        name: 'webhook_url',
        label: 'Webhook URL',
        type: 'secret',
        hint: 'Channel settings → Integrations → Webhooks: https://discord.com/api/webhooks/…',
      },
    ],
  },
  {
    kind: 'pushover',
    label: 'Pushover',
    fields: [
      { name: 'token', label: 'Application token', type: 'secret', hint: 'The API token of your Pushover application.' },
      { name: 'user', label: 'User or group key', type: 'secret' },
    ],
  },
  {
    kind: 'matrix',
    label: 'Matrix',
    fields: [
      { name: 'homeserver', label: 'Homeserver', type: 'url', placeholder: 'https://matrix.example.org' },
      { name: 'access_token', label: 'Access token', type: 'secret', hint: 'Of the account that posts the alerts.' },
      { name: 'room_id', label: 'Room ID', type: 'text', placeholder: '!abcdef:example.org', hint: 'Starts with “!” (not a #alias).' },
    ],
  },
  {
    kind: 'ntfy',
    label: 'ntfy',
    fields: [
      { name: 'server', label: 'Server', type: 'url', optional: true, placeholder: 'https://ntfy.sh', hint: 'Empty: ntfy.sh.' },
      { name: 'topic', label: 'Topic', type: 'text', hint: '1–64 letters, digits, - and _.' },
      { name: 'token', label: 'Access token', type: 'secret', optional: true, hint: 'Only for a protected topic.' },
    ],
  },
  {
    kind: 'email',
    label: 'Email',
    fields: [
      { name: 'host', label: 'SMTP server', type: 'text', placeholder: 'smtp.example.org' },
      { name: 'port', label: 'Port', type: 'number', min: 1, max: 65535, initial: 587 },
      {
        name: 'security',
        label: 'Encryption',
        type: 'select',
        options: [
          ['starttls', 'STARTTLS (usually port 587)'],
          ['tls', 'TLS from the start (usually port 465)'],
          ['none', 'None (a server on this machine only)'],
        ],
      },
      { name: 'username', label: 'Username', type: 'text', optional: true },
      { name: 'password', label: 'Password', type: 'secret', optional: true },
      { name: 'from', label: 'From', type: 'text', placeholder: 'ccgate <alerts@example.org>' },
      { name: 'to', label: 'To', type: 'list', hint: 'One address a line.' },
    ],
  },
  {
    kind: 'webhook',
    label: 'Webhook (any URL)',
    fields: [
      { name: 'url', label: 'URL', type: 'secret', hint: 'Kept secret: many hooks are authorised by their URL alone.' },
      {
        name: 'method',
        label: 'Method',
        type: 'select',
        options: [
          ['POST', 'POST'],
          ['PUT', 'PUT'],
          ['GET', 'GET (no body)'],
        ],
      },
      { name: 'headers', label: 'Headers', type: 'headers', optional: true },
      {
        name: 'body_template',
        label: 'Body template',
        type: 'template',
        optional: true,
        placeholder: '{"text": "{title}: {message}"}',
        hint:
          'JSON with {title} {message} {subscription} {person} {pct} {window}; empty sends the alert as JSON.',
      },
    ],
  },
];

export const channelKind = (kind) => CHANNEL_KINDS.find((k) => k.kind === kind);
export const channelKindLabel = (kind) => channelKind(kind)?.label ?? kind;

/** Severities: an icon and a word as well as a colour. */
export const SEVERITIES = {
  info: { icon: 'ℹ', word: 'Info' },
  warning: { icon: '▲', word: 'Warning' },
  critical: { icon: '■', word: 'Critical' },
};

export const severityLabel = (severity) => SEVERITIES[severity]?.word ?? severity ?? 'Alert';

/** What a rule can watch, in the order the form offers them. */
export const CONDITION_TYPES = [
  ['utilization', 'A subscription’s window reaches a level'],
  ['window_hit', 'A subscription’s window is used up, and resets'],
  ['limit_share', 'A person nears one of their limits'],
  ['unattributed_use', 'Use outside ccgate'],
  ['kill', 'The kill switch'],
  ['tamper', 'Tampering with ccgate’s files'],
  ['quarantined_events', 'Events held back by a device'],
  ['credential_refused', 'Anthropic refuses a team credential'],
  ['credential_expiring', 'A team credential nears its expiry'],
  ['device_silent', 'A device goes silent'],
];

export const PLAN_WINDOWS = [
  ['five_hour', '5-hour window'],
  ['seven_day', 'weekly window'],
];

const planWindowLabel = (window) => PLAN_WINDOWS.find(([k]) => k === window)?.[1] ?? window;

/**
 * The fields each condition has, as `[name, kind]`: window, percent (a
 * threshold), points, subscription, person, days, hours.
 */
export const CONDITION_FIELDS = {
  utilization: [
    ['window', 'window'],
    ['threshold', 'percent'],
    ['subscription_id', 'subscription'],
  ],
  window_hit: [
    ['window', 'window'],
    ['subscription_id', 'subscription'],
  ],
  limit_share: [
    ['threshold', 'percent'],
    ['user_id', 'person'],
  ],
  unattributed_use: [['points', 'points']],
  credential_expiring: [['days', 'days']],
  device_silent: [['hours', 'hours']],
};

/** A new condition of `type` with the server's defaults. */
export function newCondition(type) {
  switch (type) {
    case 'utilization':
      return { type, window: 'five_hour', threshold: 90 };
    case 'window_hit':
      return { type, window: 'five_hour' };
    case 'limit_share':
      return { type, threshold: 80 };
    case 'unattributed_use':
      return { type, points: 3 };
    case 'credential_expiring':
      return { type, days: 30 };
    case 'device_silent':
      return { type, hours: 24 };
    default:
      return { type };
  }
}

const inPercent = (value) => Number.isFinite(value) && value > 0 && value <= 100;

/** The server's checks, by field name (empty when fine). */
export function validateCondition(condition) {
  const problems = {};
  const c = condition;
  if ((c.type === 'utilization' || c.type === 'limit_share') && !inPercent(c.threshold)) {
    problems.threshold = 'A percentage above 0 and at most 100.';
  }
  if (c.type === 'unattributed_use' && !inPercent(c.points)) {
    problems.points = 'Percentage points above 0 and at most 100.';
  }
  if (c.type === 'credential_expiring' && !(Number.isInteger(c.days) && c.days >= 1 && c.days <= 365)) {
    problems.days = 'Whole days from 1 to 365.';
  }
  if (c.type === 'device_silent' && !(Number.isInteger(c.hours) && c.hours >= 1 && c.hours <= 2160)) {
    problems.hours = 'Whole hours from 1 to 2160 (90 days).';
  }
  return problems;
}

/** `75 %` that never breaks between the number and its sign. */
const pct = (value) => `${value}\u00a0%`;

/**
 * Where a channel delivers, from the API's `target` (`slack (hooks.slack.com)`):
 * the part in parentheses, the kind being shown apart.
 */
export function targetHost(target) {
  return /\((.*)\)$/.exec(target ?? '')?.[1] ?? target ?? '';
}

/**
 * What a rule watches, in a sentence. `names` has `subscription(id)` and
 * `person(id)` for rules narrowed to one of them.
 */
export function describeCondition(condition, names = {}) {
  const c = condition ?? {};
  const subscription = c.subscription_id
    ? (names.subscription?.(c.subscription_id) ?? `subscription ${c.subscription_id}`)
    : null;
  const whose = subscription ? `${subscription}’s` : 'a subscription’s';
  const person = c.user_id ? (names.person?.(c.user_id) ?? `person ${c.user_id}`) : null;
  switch (c.type) {
    case 'utilization':
      return `When ${whose} ${planWindowLabel(c.window)} reaches ${pct(c.threshold)}`;
    case 'window_hit':
      return `When ${whose} ${planWindowLabel(c.window)} is used up, and when it resets`;
    case 'limit_share':
      return `When ${person ?? 'someone'} reaches ${pct(c.threshold)} of one of their limits`;
    case 'unattributed_use':
      return `When a window rises ${c.points} points with no ccgate request behind it (use outside ccgate)`;
    case 'kill':
      return 'When someone is stopped with the kill switch';
    case 'tamper':
      return 'When a device reports that ccgate’s files were tampered with';
    case 'quarantined_events':
      return 'When a device holds back events the server refused';
    case 'credential_refused':
      return 'When Anthropic refuses a team credential';
    case 'credential_expiring':
      return `When a team credential expires within ${c.days} days`;
    case 'device_silent':
      return `When a device has not been seen for ${c.hours} hours`;
    default:
      return c.type ?? 'Unknown condition';
  }
}

/** Whether a person may subscribe to rules of this type (about their own usage). */
export const concernsOnePerson = (type) => type === 'limit_share' || type === 'kill';

/** `Team chat, Ops email`, or where the alert goes without a channel. */
export function channelsText(ids, channelsById) {
  if (!ids?.length) return 'No channel: listed on the Activity page only';
  return ids.map((id) => channelsById.get(id)?.name ?? `channel ${id} (deleted)`).join(', ');
}

/** `at most once every 4 h`. */
export function cooldownText(seconds) {
  if (!seconds) return 'every time';
  return `at most once every ${duration(seconds * 1000)}`;
}

/** Hours for the form (`4`, `0.5`) from seconds, and back. */
export const cooldownHours = (seconds) => Math.round((seconds / 3600) * 100) / 100;
export const cooldownSeconds = (hours) => Math.round(hours * 3600);
