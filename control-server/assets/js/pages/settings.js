// Settings: the team (name, time zone, credit weights, clients without
// turn data), the counting rules, the subscriptions the server holds a
// credential for, alerts (channels and rules), single sign-on (when the
// server has a provider: identities, their roles and people, the sign-in
// settings), the built-in admin's password, API tokens for scripts and
// named admin/viewer accounts, with a list of the sections at the top.
// Viewers see the values without controls.

import { del, get, post, put } from '../api.js';
import { AlertsSettings } from '../components/alerts-settings.js';
import { copyField } from '../components/copy.js';
import { countingForm } from '../components/counting-form.js';
import { updatesForm } from '../components/updates-form.js';
import { confirmAction } from '../components/dialog.js';
import { actionForm, field } from '../components/form.js';
import { attempt } from '../components/notices.js';
import { SsoSettings } from '../components/sso-settings.js';
import { SubscriptionsPanel } from '../components/subscriptions-panel.js';
import { h, pageReady, replace } from '../dom.js';
import { ago, dateTime } from '../format.js';
import { FAMILIES } from '../rules.js';
import { canEdit } from '../session.js';

function panel(id, title, ...children) {
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': id },
    h('h2', { id, class: 'panel__title' }, title),
    children,
  );
}

function teamForm(settings) {
  const name = h('input', { id: 'team-name', type: 'text', value: settings.team_name, maxlength: 100, required: true });
  const zone = h('input', {
    id: 'team-zone',
    type: 'text',
    value: settings.time_zone,
    list: 'settings-zones',
    autocomplete: 'off',
  });
  const zones = h(
    'datalist',
    { id: 'settings-zones' },
    (Intl.supportedValuesOf?.('timeZone') ?? []).map((z) => h('option', { value: z })),
  );
  const weights = Object.fromEntries(
    FAMILIES.map((f) => [
      f,
      h('input', {
        id: `weight-${f}`,
        type: 'number',
        min: 0,
        max: 1000000,
        step: 1,
        value: settings.credit_weights[f],
        inputmode: 'numeric',
      }),
    ]),
  );
  const unidentified = h(
    'select',
    { id: 'unidentified' },
    h('option', { value: 'allow' }, 'Allow (count by the message body)'),
    h('option', { value: 'deny' }, 'Refuse'),
  );
  unidentified.value = settings.unidentified_clients;
  return actionForm({
    id: 'team-form',
    disabled: !canEdit(),
    submitLabel: 'Save team settings',
    success: 'Team settings saved.',
    children: [
      field('Team name', name),
      field('Time zone', zone, 'Days, weeks and months start at local midnight here (users can have their own).'),
      zones,
      h(
        'fieldset',
        { class: 'weights' },
        h('legend', {}, 'Credit weights: credits one prompt costs'),
        h(
          'div',
          { class: 'weights__grid' },
          FAMILIES.map((f) => field(f[0].toUpperCase() + f.slice(1), weights[f])),
        ),
      ),
      field('Clients without turn data (old CLIs, SDK, curl)', unidentified),
    ],
    action: () =>
      put('/settings', {
        team_name: name.value,
        time_zone: zone.value,
        credit_weights: Object.fromEntries(FAMILIES.map((f) => [f, Number(weights[f].value)])),
        unidentified_clients: unidentified.value,
      }),
  });
}

function passwordForm() {
  const current = h('input', { id: 'current-password', type: 'password', autocomplete: 'current-password' });
  const first = h('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', minlength: 8 });
  const second = h('input', { id: 'repeat-password', type: 'password', autocomplete: 'new-password' });
  return actionForm({
    id: 'password-form',
    submitLabel: 'Change password',
    success: 'Password changed. Other sessions of the built-in admin were logged out.',
    children: [
      field('Current password', current, 'The built-in admin’s password now.'),
      field('New password', first, 'At least 8 characters.'),
      field('Repeat it', second),
    ],
    action: async () => {
      if (!current.value) throw new Error('Enter the current password.');
      if (first.value.length < 8) throw new Error('The password needs at least 8 characters.');
      if (first.value !== second.value) throw new Error('The two passwords differ.');
      await put('/settings', { admin_password: first.value, current_password: current.value });
      current.value = '';
      first.value = '';
      second.value = '';
    },
  });
}

function revokeButton(label, confirmText, action) {
  const button = h('button', { type: 'button', class: 'button button--quiet button--danger-text' }, label);
  button.addEventListener('click', async () => {
    if (await confirmAction({ ...confirmText, danger: true })) await action();
  });
  return button;
}

async function tokensPanel() {
  const body = h('div');
  const created = h('div', { id: 'new-token' });
  const load = async () => {
    const { tokens } = await get('/tokens');
    const rows = tokens.map((t) =>
      h(
        'tr',
        { class: t.revoked_at ? 'row--revoked' : '' },
        h('th', { scope: 'row' }, t.name),
        h('td', {}, t.role),
        h('td', { title: dateTime(t.created_at) }, `${ago(t.created_at)} by ${t.created_by ?? '?'}`),
        h('td', {}, t.last_used_at ? ago(t.last_used_at) : 'never'),
        h(
          'td',
          {},
          t.revoked_at
            ? `revoked ${ago(t.revoked_at)}`
            : canEdit()
              ? revokeButton(
                  'Revoke',
                  {
                    title: `Revoke “${t.name}”?`,
                    message: 'Scripts using this token stop working at once.',
                    confirm: 'Revoke',
                  },
                  async () => {
                    if ((await attempt(() => del(`/tokens/${t.id}`), 'Token revoked.')) !== undefined) await load();
                  },
                )
              : 'active',
        ),
      ),
    );
    replace(
      body,
      tokens.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'table' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Name', 'Role', 'Created', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)),
                ),
              ),
              h('tbody', {}, rows),
            ),
          )
        : h('p', { class: 'muted' }, 'No API tokens.'),
    );
  };
  await load();
  const name = h('input', { id: 'token-name', type: 'text', maxlength: 100, placeholder: 'e.g. nightly report' });
  const role = h(
    'select',
    { id: 'token-role' },
    h('option', { value: 'viewer' }, 'viewer (read only)'),
    h('option', { value: 'admin' }, 'admin'),
  );
  const form = canEdit()
    ? actionForm({
        id: 'token-form',
        submitLabel: 'Create token',
        children: [h('div', { class: 'form__row' }, field('Name', name), field('Role', role))],
        action: async () => {
          const answer = await post('/tokens', { name: name.value, role: role.value });
          name.value = '';
          replace(
            created,
            h(
              'div',
              { class: 'secret' },
              h(
                'p',
                {},
                h('strong', {}, 'Copy it now: '),
                'the token is shown only once. Scripts send it as ',
                h('code', {}, 'Authorization: Bearer …'),
                '.',
              ),
              copyField(answer.token, { label: `API token ${answer.name}` }),
            ),
          );
          await load();
        },
      })
    : null;
  return panel('tokens-title', 'API tokens for scripts', body, created, form);
}

async function accountsPanel() {
  const body = h('div');
  const load = async () => {
    const { accounts } = await get('/accounts');
    replace(
      body,
      accounts.length
        ? h(
            'ul',
            { class: 'account-list' },
            accounts.map((a) =>
              h(
                'li',
                {},
                h('strong', {}, a.username),
                ` · ${a.role} · since ${dateTime(a.created_at)} `,
                canEdit()
                  ? revokeButton(
                      'Delete',
                      {
                        title: `Delete the account “${a.username}”?`,
                        message: 'Its sessions end at once.',
                        confirm: 'Delete',
                      },
                      async () => {
                        if ((await attempt(() => del(`/accounts/${a.id}`), 'Account deleted.')) !== undefined)
                          await load();
                      },
                    )
                  : null,
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'Only the built-in admin.'),
    );
  };
  await load();
  const username = h('input', { id: 'account-name', type: 'text', autocomplete: 'off' });
  const password = h('input', { id: 'account-password', type: 'password', autocomplete: 'new-password' });
  const role = h(
    'select',
    { id: 'account-role' },
    h('option', { value: 'viewer' }, 'viewer (read only)'),
    h('option', { value: 'admin' }, 'admin'),
  );
  const form = canEdit()
    ? actionForm({
        id: 'account-form',
        submitLabel: 'Add account',
        success: 'Account added.',
        children: [
          h(
            'div',
            { class: 'form__row' },
            field('Username', username),
            field('Password', password, 'At least 8 characters.'),
            field('Role', role),
          ),
        ],
        action: async () => {
          await post('/accounts', { username: username.value, password: password.value, role: role.value });
          username.value = '';
          password.value = '';
          await load();
        },
      })
    : null;
  return panel(
    'accounts-title',
    'Accounts',
    h('p', { class: 'muted' }, 'Named logins. Viewers see every page without any control that changes something.'),
    body,
    form,
  );
}

/** Links to the page's sections (the page is long): `[id of its title, text]`. */
function contents(sections) {
  return h(
    'nav',
    { class: 'contents', 'aria-label': 'On this page' },
    h('span', { class: 'contents__label muted' }, 'On this page:'),
    h(
      'ul',
      {},
      sections.map(([id, text]) => h('li', {}, h('a', { href: `#${id}` }, text))),
    ),
  );
}

/** The single sign-on card, when the server has a provider (else null). */
async function ssoPanel() {
  const options = await get('/login').catch(() => ({}));
  if (!options.sso?.enabled) return null;
  const sso = new SsoSettings();
  await sso.load();
  return sso;
}

export async function render(main, { live }) {
  const subscriptions = new SubscriptionsPanel();
  const alerts = new AlertsSettings();
  const [{ settings }, tokens, accounts, sso] = await Promise.all([
    get('/settings'),
    tokensPanel(),
    accountsPanel(),
    ssoPanel(),
    subscriptions.load(),
    alerts.load(),
  ]);
  sso?.showSettings(settings);
  live.on('subscription_changed', () => subscriptions.load().catch(() => {}));
  live.on('resync', () => {
    subscriptions.load().catch(() => {});
    alerts.load().catch(() => {});
  });
  replace(
    main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Settings')),
    contents([
      ['team-title', 'Team'],
      ['counting-title', 'Counting rules'],
      ['updates-title', 'Agent updates'],
      ['subscriptions-title', 'Subscriptions'],
      ['alerts', 'Alerts'],
      sso ? ['sso-title', 'Single sign-on'] : null,
      canEdit() ? ['password-title', 'Admin password'] : null,
      ['tokens-title', 'API tokens'],
      ['accounts-title', 'Accounts'],
    ].filter(Boolean)),
    h(
      'div',
      { class: 'settings' },
      panel('team-title', 'Team', teamForm(settings)),
      panel('counting-title', 'Counting rules', countingForm(settings)),
      panel('updates-title', 'Agent updates', updatesForm(settings)),
      subscriptions.element,
      alerts.element,
      sso?.element,
      canEdit()
        ? panel(
            'password-title',
            'Admin password',
            h('p', { class: 'muted' }, 'The password of the built-in admin (no username).'),
            passwordForm(),
          )
        : null,
      tokens,
      accounts,
    ),
  );
  // A link to a section (e.g. /dashboard/settings#alerts) lands there once it exists.
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  pageReady();
}
