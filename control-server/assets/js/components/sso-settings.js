// Settings → Single sign-on (shown when the server has an OpenID provider):
// every identity that signed in, with its e-mail, name and groups, the
// role its groups give and the role an admin set by hand (which wins), the
// person of the team it is linked to, and deleting it (its sessions end);
// then whether a first sign-in links to the person with the same verified
// e-mail, and who may still sign in with a password. A change to a row is
// saved at once. Viewers see it all without controls.

import { del, get, put } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, dateTime } from '../format.js';
import { canEdit } from '../session.js';
import { confirmAction } from './dialog.js';
import { actionForm, field } from './form.js';
import { attempt } from './notices.js';

const ROLES = ['admin', 'viewer', 'member'];
const ROLE_WORDS = { admin: 'Admin', viewer: 'Viewer (read only)', member: 'Member (own page)' };

export const PASSWORD_LOGIN = [
  ['everyone', 'Everyone with an account (the built-in admin and named accounts)'],
  ['builtin_admin_only', 'The built-in admin only (break-glass)'],
];

const roleText = (role) => (role ? ROLE_WORDS[role] ?? role : 'none');

function identityLabel(identity) {
  return identity.email ?? identity.name ?? identity.subject;
}

function groupList(groups) {
  if (!groups?.length) return h('span', { class: 'muted' }, 'none');
  return h(
    'ul',
    { class: 'groups' },
    groups.map((group) => h('li', {}, h('span', { class: 'tag' }, group))),
  );
}

export class SsoSettings {
  constructor() {
    this.settings = {};
    this.identities = [];
    this.people = [];
    this.body = h('div', { id: 'identities' });
    this.formHolder = h('div');
    this.element = h(
      'section',
      { class: 'panel settings__wide', 'aria-labelledby': 'sso-title', id: 'sso' },
      h('h2', { id: 'sso-title', class: 'panel__title' }, 'Single sign-on'),
      h(
        'p',
        { class: 'muted' },
        'Everyone who signed in through the identity provider. Their groups give the role (admin groups first, then viewer, then member groups); a role set here wins over the groups. A member sees only their own page, so link them to their person.',
      ),
      this.body,
      h('h3', { class: 'panel__subtitle' }, 'Sign-in settings'),
      this.formHolder,
    );
  }

  /** The team's settings (`GET /settings`): the sign-in settings' form. */
  showSettings(settings) {
    this.settings = settings;
    replace(this.formHolder, this.settingsForm());
  }

  async load() {
    const [{ identities }, { users }] = await Promise.all([get('/identities'), get('/users')]);
    this.identities = identities;
    this.people = [...users].sort((a, b) => a.name.localeCompare(b.name));
    this.show();
  }

  show() {
    if (!this.identities.length) {
      replace(this.body, h('p', { class: 'muted' }, 'Nobody has signed in with single sign-on yet.'));
      return;
    }
    replace(
      this.body,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table identities', id: 'identities-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['E-mail', 'Name', 'Groups', 'Role from groups', 'Role', 'Person', 'Last sign-in', ''].map((title) =>
                h('th', { scope: 'col' }, title),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            this.identities.map((identity) => this.row(identity)),
          ),
        ),
      ),
    );
  }

  row(identity) {
    const label = identityLabel(identity);
    return h(
      'tr',
      { dataset: { identityId: identity.id } },
      h(
        'th',
        { scope: 'row' },
        identity.email ?? h('span', { class: 'muted' }, 'no e-mail'),
        identity.email && !identity.email_verified
          ? h('span', { class: 'tag', title: 'The provider did not say the e-mail is verified' }, 'unverified')
          : null,
        h('div', { class: 'muted', title: identity.issuer }, h('small', {}, `subject ${identity.subject}`)),
      ),
      h('td', {}, identity.name ?? '—'),
      h('td', {}, groupList(identity.groups)),
      h('td', { class: identity.group_role ? '' : 'role--none' }, roleText(identity.group_role)),
      h('td', {}, this.roleCell(identity, label)),
      h('td', {}, this.personCell(identity, label)),
      h('td', { title: dateTime(identity.last_login_at) }, ago(identity.last_login_at)),
      h('td', {}, canEdit() ? this.deleteButton(identity, label) : null),
    );
  }

  roleCell(identity, label) {
    const effective = h(
      'div',
      { class: `field__hint${identity.role ? '' : ' role--none'}` },
      identity.role ? `Signs in as: ${roleText(identity.role)}` : 'No role: sign-in refused',
    );
    if (!canEdit()) {
      return [identity.role_override ? `${roleText(identity.role_override)} (set by hand)` : 'From groups', effective];
    }
    const select = h(
      'select',
      {
        dataset: { field: 'role_override', identityId: identity.id },
        'aria-label': `Role of ${label}`,
      },
      h('option', { value: '' }, 'From groups'),
      ROLES.map((role) => h('option', { value: role }, ROLE_WORDS[role])),
    );
    select.value = identity.role_override ?? '';
    select.addEventListener('change', () =>
      this.save(identity, { role_override: select.value || null }, `${label}: role saved.`, select),
    );
    return [select, effective];
  }

  personCell(identity, label) {
    if (!canEdit()) {
      return identity.person
        ? h('a', { href: `/dashboard/users/${identity.person.id}` }, identity.person.name)
        : h('span', { class: 'muted' }, 'not linked');
    }
    const select = h(
      'select',
      { dataset: { field: 'user_id', identityId: identity.id }, 'aria-label': `Person of ${label}` },
      h('option', { value: '' }, 'Not linked'),
      this.people.map((person) => h('option', { value: String(person.id) }, person.name)),
    );
    select.value = identity.person ? String(identity.person.id) : '';
    select.addEventListener('change', () =>
      this.save(
        identity,
        { user_id: select.value ? Number(select.value) : null },
        select.value ? `${label} is linked.` : `${label} is no longer linked.`,
        select,
      ),
    );
    return select;
  }

  async save(identity, changes, success, control) {
    control.disabled = true;
    const answer = await attempt(() => put(`/identities/${identity.id}`, changes), success);
    if (answer?.identity) {
      this.identities = this.identities.map((i) => (i.id === identity.id ? answer.identity : i));
    }
    // Shown again either way: a refused change goes back to what is stored.
    this.show();
    this.body
      .querySelector(`select[data-identity-id="${identity.id}"][data-field="${control.dataset.field}"]`)
      ?.focus();
  }

  deleteButton(identity, label) {
    const button = h(
      'button',
      {
        type: 'button',
        class: 'button button--quiet button--danger-text',
        dataset: { action: 'delete', identityId: identity.id },
        'aria-label': `Delete ${label}`,
      },
      'Delete',
    );
    button.addEventListener('click', async () => {
      const sure = await confirmAction({
        title: `Delete ${label}?`,
        message: `Its sessions end at once. If ${label} signs in again, the identity comes back with the role its groups give.`,
        confirm: 'Delete',
        danger: true,
      });
      if (!sure) return;
      if ((await attempt(() => del(`/identities/${identity.id}`), `${label} was deleted.`)) !== undefined) {
        await this.load();
      }
    });
    return button;
  }

  settingsForm() {
    const link = h('input', { id: 'sso-link-by-email', type: 'checkbox' });
    link.checked = this.settings.sso_link_by_email !== false;
    const passwords = h(
      'select',
      { id: 'password-login' },
      PASSWORD_LOGIN.map(([value, text]) => h('option', { value }, text)),
    );
    passwords.value = this.settings.password_login ?? 'everyone';
    return actionForm({
      id: 'sso-form',
      disabled: !canEdit(),
      submitLabel: 'Save sign-in settings',
      success: 'Sign-in settings saved.',
      children: [
        h(
          'div',
          { class: 'field field--check' },
          h(
            'label',
            { for: 'sso-link-by-email', class: 'check' },
            link,
            ' Link a first sign-in to the person with the same e-mail',
          ),
          h(
            'span',
            { class: 'field__hint' },
            'Only an e-mail the provider says is verified. Set a person’s e-mail on their page.',
          ),
        ),
        field('Password sign-in', passwords, 'Keep the built-in admin for when the provider is down.'),
      ],
      action: async () => {
        const answer = await put('/settings', {
          sso_link_by_email: link.checked,
          password_login: passwords.value,
        });
        if (answer?.settings) this.settings = answer.settings;
        return answer;
      },
    });
  }
}
