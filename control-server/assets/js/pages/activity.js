// Activity: the alerts the rules raised with every delivery attempt (live),
// then the audit log (admin actions, kills, registrations, tamper
// reports), newest first, filtered by kind and user (kept in the URL so a
// filtered view can be linked), with "load more" paging.

import { channelKindLabel, describeCondition } from '../alerts.js';
import { get, query } from '../api.js';
import { AlertLog } from '../components/alert-log.js';
import { h, pageReady, replace } from '../dom.js';
import { ago, dateTime } from '../format.js';
import { credentialKindLabel } from '../rules.js';

/** kind, icon, the filter's label, one entry's label. */
const KINDS = [
  ['tamper', '⚠', 'Tamper alerts', 'Tamper alert'],
  ['delivery_fault', '⚠', 'Events held back by devices', 'Events held back'],
  ['user_killed', '✕', 'Kills', 'Kill'],
  ['user_status_change', '⇄', 'Pauses and resumes', 'Status change'],
  ['user_updated', '✎', 'User changes', 'User changed'],
  ['user_created', '+', 'Users added', 'User added'],
  ['user_deleted', '−', 'Users deleted', 'User deleted'],
  ['device_registered', '⌂', 'Devices registered', 'Device registered'],
  ['device_revoked', '✕', 'Devices revoked', 'Device revoked'],
  ['install_code_created', '#', 'Install codes', 'Install code'],
  ['tokens_rotated', '↻', 'Device tokens rotated', 'Device tokens rotated'],
  ['settings_changed', '⚙', 'Settings changes', 'Settings changed'],
  ['login', '→', 'Logins', 'Login'],
  ['login_failed', '⊘', 'Failed logins', 'Failed login'],
  ['register_failed', '⊘', 'Failed registrations', 'Failed registration'],
  ['token_created', '◆', 'API tokens created', 'API token created'],
  ['token_revoked', '◆', 'API tokens revoked', 'API token revoked'],
  ['account_created', '☺', 'Accounts added', 'Account added'],
  ['account_deleted', '☺', 'Accounts deleted', 'Account deleted'],
  ['subscription_created', '⚿', 'Subscriptions added', 'Subscription added'],
  ['subscription_rotated', '↻', 'Credentials rotated', 'Credential rotated'],
  ['subscription_renamed', '✎', 'Subscriptions renamed', 'Subscription renamed'],
  ['subscription_deleted', '−', 'Subscriptions deleted', 'Subscription deleted'],
  ['credential_sent', '⚿', 'Credentials sent to devices', 'Credential sent'],
  ['alert_channel_created', '⚑', 'Alert channels added', 'Alert channel added'],
  ['alert_channel_updated', '⚑', 'Alert channels changed', 'Alert channel changed'],
  ['alert_channel_deleted', '⚑', 'Alert channels deleted', 'Alert channel deleted'],
  ['alert_rule_created', '⚑', 'Alert rules added', 'Alert rule added'],
  ['alert_rule_updated', '⚑', 'Alert rules changed', 'Alert rule changed'],
  ['alert_rule_deleted', '⚑', 'Alert rules deleted', 'Alert rule deleted'],
];
const PAGE_SIZE = 50;
const LIVE_KINDS = [
  'user_killed',
  'tamper',
  'delivery_fault',
  'user_created',
  'user_updated',
  'user_deleted',
  'device_registered',
  'device_revoked',
  'subscription_changed',
];

const entryLabel = (kind) => {
  const found = KINDS.find(([k]) => k === kind);
  return found ? `${found[1]} ${found[3]}` : kind;
};

function changes(detail) {
  return Object.entries(detail ?? {})
    .filter(([, value]) => value !== null && value !== undefined && value !== false)
    .map(([key, value]) => {
      if (key === 'limits' && Array.isArray(value)) return `limits (${value.length} rules)`;
      if (key === 'admin_password_changed') return 'admin password';
      return typeof value === 'object' ? `${key} ${JSON.stringify(value)}` : `${key}: ${value}`;
    })
    .join(', ');
}

/** A line a person can read for each kind of entry; `names` names people by id. */
function describe(entry, names) {
  const d = entry.detail ?? {};
  switch (entry.kind) {
    case 'tamper':
      return `${d.path ?? 'a file'} ${d.what ?? 'changed'} · ${d.restored ? 'restored' : 'NOT restored'}${d.detail ? ` · ${d.detail}` : ''}`;
    case 'user_killed':
    case 'user_status_change':
      return `${d.old_status ?? '?'} → ${d.new_status ?? '?'}`;
    case 'login':
      return d.client ? `from ${d.client}` : '';
    case 'login_failed':
      return `${d.username ? `as ${d.username} ` : ''}from ${d.client ?? 'an unknown address'}`;
    case 'register_failed':
      return `${d.reason ?? 'unknown'} install code on the ${d.api === 'hook' ? 'hook' : 'agent'} API from ${d.client ?? 'an unknown address'}`;
    case 'delivery_fault':
      return `${d.hostname ?? 'a device'} holds back ${d.quarantined ?? '?'} event${d.quarantined === 1 ? '' : 's'}: ${d.reason ?? 'no reason given'}`;
    case 'device_registered':
    case 'device_revoked':
      return `${d.hostname ?? 'a device'} (${d.kind ?? 'proxy'})`;
    case 'install_code_created':
      return d.kind === 'hook' ? 'hook code (claude-code-limiter machine)' : 'setup code';
    case 'tokens_rotated':
      return `${d.devices ?? 0} devices`;
    case 'user_created':
      return `${d.name ?? ''} (${d.slug ?? ''}), ${(d.limits ?? []).length} limits`;
    case 'subscription_created':
    case 'subscription_rotated':
    case 'subscription_deleted':
      return `${d.name ?? 'a subscription'} · ${credentialKindLabel(d.kind)} …${d.credential_hint ?? '?'} · version ${d.credential_version ?? '?'}`;
    case 'subscription_renamed':
      return `${d.old_name ?? '?'} → ${d.name ?? '?'}`;
    case 'credential_sent':
      return `${d.subscription ?? `subscription ${d.subscription_id ?? '?'}`}, version ${d.credential_version ?? '?'}`;
    case 'alert_channel_created':
    case 'alert_channel_updated':
      return `${d.name ?? `channel ${d.channel_id ?? '?'}`} (${channelKindLabel(d.kind)})`;
    case 'alert_channel_deleted':
      return `channel ${d.channel_id ?? '?'}`;
    case 'alert_rule_created':
    case 'alert_rule_updated':
      return `${d.name ?? `rule ${d.rule_id ?? '?'}`}: ${describeCondition(d.condition, { person: (id) => names.get(id) })}`;
    case 'alert_rule_deleted':
      return `rule ${d.rule_id ?? '?'}`;
    default:
      return changes(d);
  }
}

export async function render(main, { live }) {
  const alerts = new AlertLog();
  live.on('alert_fired', (message) => alerts.fired(message));
  live.on('alert_delivery', (message) => alerts.delivered(message));
  live.on('resync', () => alerts.reloadSoon());
  const params = new URLSearchParams(location.search);
  const filter = { kind: params.get('kind') ?? '', user_id: params.get('user_id') ?? '' };
  const [{ users }] = await Promise.all([get('/users'), alerts.load()]);
  const names = new Map(users.map((u) => [u.id, u.name]));
  const hosts = new Map(users.flatMap((u) => u.devices.map((d) => [`device:${d.id}`, d.hostname])));
  // `device:3` reads better as the device's host name.
  const actor = (text) => (hosts.get(text) ? `${hosts.get(text)} (${text.replace(':', ' ')})` : (text ?? '—'));

  const kind = h(
    'select',
    { id: 'filter-kind', name: 'kind' },
    h('option', { value: '' }, 'Everything'),
    KINDS.map(([value, icon, text]) => h('option', { value }, `${icon} ${text}`)),
  );
  kind.value = filter.kind;
  const user = h(
    'select',
    { id: 'filter-user', name: 'user_id' },
    h('option', { value: '' }, 'All users'),
    users.map((u) => h('option', { value: u.id }, u.name)),
  );
  user.value = filter.user_id;
  const rows = h('tbody', { id: 'audit-rows' });
  const more = h('button', { type: 'button', class: 'button', hidden: true }, 'Load more');
  const empty = h('p', { class: 'muted', hidden: true }, 'Nothing recorded for this filter.');
  let cursor = null;
  let pages = 0;

  const row = (entry) =>
    h(
      'tr',
      { dataset: { kind: entry.kind } },
      h(
        'td',
        { class: 'audit-when' },
        h('time', { datetime: entry.at }, dateTime(entry.at)),
        h('span', { class: 'muted' }, ago(entry.at)),
      ),
      h('td', { class: `audit-kind audit-kind--${entry.kind}` }, entryLabel(entry.kind)),
      h('td', {}, actor(entry.actor)),
      h(
        'td',
        {},
        entry.user_id
          ? names.has(entry.user_id)
            ? h('a', { href: `/dashboard/users/${entry.user_id}` }, names.get(entry.user_id))
            : `user ${entry.user_id} (deleted)`
          : '—',
      ),
      h('td', { class: 'audit-detail' }, describe(entry, names)),
    );

  const load = async ({ reset }) => {
    const answer = await get(`/audit${query({ ...filter, limit: PAGE_SIZE, before: reset ? null : cursor })}`);
    if (reset) {
      rows.replaceChildren();
      pages = 0;
    }
    pages += 1;
    rows.append(...answer.entries.map(row));
    cursor = answer.next_before;
    more.hidden = !cursor;
    empty.hidden = rows.children.length > 0;
  };
  const apply = async () => {
    filter.kind = kind.value;
    filter.user_id = user.value;
    history.replaceState(null, '', `${location.pathname}${query(filter)}`);
    await load({ reset: true });
  };
  kind.addEventListener('change', apply);
  user.addEventListener('change', apply);
  more.addEventListener('click', () => load({ reset: false }));

  let timer = null;
  const refreshFirstPage = () => {
    if (pages > 1) return;
    clearTimeout(timer);
    timer = setTimeout(() => load({ reset: true }).catch(() => {}), 300);
  };
  for (const type of LIVE_KINDS) live.on(type, refreshFirstPage);
  live.on('resync', refreshFirstPage);

  await load({ reset: true });
  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h(
        'div',
        {},
        h('h1', {}, 'Activity'),
        h('p', { class: 'muted' }, 'Alerts, admin actions, kills, tamper reports and registrations, newest first.'),
      ),
    ),
    alerts.element,
    h('h2', { class: 'section-title', id: 'audit-title' }, 'Audit log'),
    h(
      'form',
      { class: 'panel filters', role: 'search', 'aria-label': 'Filter the audit log' },
      h('div', { class: 'field' }, h('label', { for: 'filter-kind' }, 'Show'), kind),
      h('div', { class: 'field' }, h('label', { for: 'filter-user' }, 'User'), user),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'audit-title' },
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table audit' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['When', 'What', 'Who', 'User', 'Details'].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          rows,
        ),
      ),
      empty,
      more,
    ),
  );
  pageReady();
}
