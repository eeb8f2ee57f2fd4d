// Settings → Subscriptions: the subscriptions whose credential the server
// holds (team-credential mode), and the accounts seen in personal-login
// traffic. Each shows its name, kind, the credential's last four characters,
// its version and how many people use it. Admins add one (the credential
// goes in a password field, is sent once and never shown again), rotate its
// credential, rename it, or delete it after a confirmation; a seen account
// has no credential and can only be renamed. Viewers see the list only.

import { del, get, post, put } from '../api.js';
import { h, replace } from '../dom.js';
import { dateTime, number } from '../format.js';
import { credentialKindLabel } from '../rules.js';
import { canEdit } from '../session.js';
import { confirmAction } from './dialog.js';
import { actionForm, field } from './form.js';
import { attempt, notify } from './notices.js';

const people = (n) => `${number(n)} ${n === 1 ? 'person' : 'people'}`;

/** A field for a pasted credential: hidden as typed, never autofilled. */
function credentialInput(id) {
  return h('input', {
    id,
    type: 'password',
    autocomplete: 'off',
    autocapitalize: 'off',
    spellcheck: 'false',
    maxlength: 4096,
  });
}

const isSeen = (subscription) => subscription.origin === 'seen';

/** `…wxyz`, read as "ends in wxyz"; a seen account has none. */
function hint(subscription) {
  if (isSeen(subscription)) return h('span', { class: 'muted' }, 'none held');
  return h(
    'span',
    { class: 'credential-hint' },
    h('span', { class: 'visually-hidden' }, 'ends in '),
    h('code', {}, `…${subscription.credential_hint}`),
  );
}

function actionButton(text, action, subscription) {
  return h(
    'button',
    {
      type: 'button',
      class: `button button--quiet${action === 'delete' ? ' button--danger-text' : ''}`,
      dataset: { action, subscriptionId: subscription.id },
      'aria-label': `${text} ${subscription.name}`,
    },
    text,
  );
}

export class SubscriptionsPanel {
  constructor() {
    this.list = h('div', { id: 'subscription-list' });
    this.editor = h('div', { id: 'subscription-editor' });
    this.element = h(
      'section',
      { class: 'panel settings__wide', 'aria-labelledby': 'subscriptions-title' },
      h('h2', { id: 'subscriptions-title', class: 'panel__title' }, 'Subscriptions'),
      h(
        'p',
        { class: 'muted' },
        'The team’s Claude logins, held by this server. A person assigned to one uses it through ccgate and never ' +
          'sees it. Make a long-lived token with ',
        h('code', {}, 'claude setup-token'),
        ' and paste it here: only its last four characters are shown again. Accounts people sign in to with ' +
          'their own login appear here too, as “seen in traffic”: they can be renamed, nothing more.',
      ),
      this.list,
      this.editor,
      canEdit() ? this.addForm() : null,
    );
  }

  async load() {
    const { subscriptions } = await get('/subscriptions');
    this.subscriptions = subscriptions;
    // A live update redraws the rows: the focus stays on the same button.
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset : null;
    replace(this.list, subscriptions.length ? this.table(subscriptions) : this.empty());
    if (focused?.action) {
      const selector = `button[data-action="${focused.action}"][data-subscription-id="${focused.subscriptionId}"]`;
      this.list.querySelector(selector)?.focus();
    }
  }

  empty() {
    return h('p', { class: 'muted' }, 'No subscription yet: everyone signs in with their own login.');
  }

  table(subscriptions) {
    const titles = ['Name', 'Kind', 'Credential', 'Version', 'Used by', canEdit() ? 'Actions' : null];
    return h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'table', id: 'subscriptions' },
        h('thead', {}, h('tr', {}, titles.filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          subscriptions.map((s) =>
            h(
              'tr',
              { dataset: { subscriptionId: s.id } },
              h('th', { scope: 'row' }, s.name),
              h('td', {}, isSeen(s) ? 'seen in traffic' : credentialKindLabel(s.kind)),
              h('td', {}, hint(s)),
              isSeen(s)
                ? h('td', {}, '—')
                : h('td', { title: `changed ${dateTime(s.updated_at)}` }, `v${s.credential_version}`),
              h('td', {}, people(s.users)),
              canEdit()
                ? h(
                    'td',
                    {},
                    h(
                      'div',
                      { class: 'actions', role: 'group', 'aria-label': `Actions for ${s.name}` },
                      this.renameButton(s),
                      isSeen(s) ? null : this.rotateButton(s),
                      isSeen(s) ? null : this.deleteButton(s),
                    ),
                  )
                : null,
            ),
          ),
        ),
      ),
    );
  }

  addForm() {
    const name = h('input', { id: 'subscription-name', type: 'text', maxlength: 100, placeholder: 'e.g. Team Max' });
    const credential = credentialInput('subscription-credential');
    return actionForm({
      id: 'subscription-form',
      submitLabel: 'Add subscription',
      children: [
        h('h3', {}, 'Add a subscription'),
        h(
          'div',
          { class: 'form__row' },
          field('Name', name),
          field('Credential', credential, 'The output of claude setup-token, or an API key.'),
        ),
      ],
      action: async () => {
        const answer = await post('/subscriptions', { name: name.value, credential: credential.value });
        credential.value = '';
        name.value = '';
        await this.load();
        const { subscription } = answer;
        notify(`${subscription.name} added (credential …${subscription.credential_hint}).`, 'success');
      },
    });
  }

  /** Shows `form` in the editor and puts the focus in its first field. */
  edit(form) {
    replace(this.editor, form);
    form.querySelector('input')?.focus();
  }

  /** Empties the editor; the focus goes back to the button that opened it. */
  closeEditor(action, subscription) {
    replace(this.editor);
    const selector = `button[data-action="${action}"][data-subscription-id="${subscription?.id}"]`;
    this.list.querySelector(selector)?.focus();
  }

  cancelButton(action, subscription) {
    const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => this.closeEditor(action, subscription));
    return cancel;
  }

  renameButton(subscription) {
    const button = actionButton('Rename', 'rename', subscription);
    button.addEventListener('click', () => {
      const name = h('input', { id: 'rename-name', type: 'text', maxlength: 100, value: subscription.name });
      const form = actionForm({
        id: 'rename-form',
        submitLabel: 'Rename',
        success: 'Subscription renamed.',
        children: [h('h3', {}, `Rename “${subscription.name}”`), field('New name', name)],
        action: async () => {
          await put(`/subscriptions/${subscription.id}`, { name: name.value });
          await this.load();
          this.closeEditor('rename', subscription);
        },
      });
      form.querySelector('.form__actions').append(this.cancelButton('rename', subscription));
      this.edit(form);
    });
    return button;
  }

  rotateButton(subscription) {
    const button = actionButton('Rotate', 'rotate', subscription);
    button.addEventListener('click', () => {
      const credential = credentialInput('rotate-credential');
      const form = actionForm({
        id: 'rotate-form',
        submitLabel: 'Rotate credential',
        children: [
          h('h3', {}, `New credential for “${subscription.name}”`),
          field(
            'New credential',
            credential,
            `The devices of the ${people(subscription.users)} using it switch within a second. Sign the old one out afterwards.`,
          ),
        ],
        action: async () => {
          const answer = await put(`/subscriptions/${subscription.id}`, { credential: credential.value });
          credential.value = '';
          await this.load();
          this.closeEditor('rotate', subscription);
          const { subscription: rotated } = answer;
          notify(
            `${rotated.name} now uses credential …${rotated.credential_hint} (version ${rotated.credential_version}).`,
            'success',
          );
        },
      });
      form.querySelector('.form__actions').append(this.cancelButton('rotate', subscription));
      this.edit(form);
    });
    return button;
  }

  deleteButton(subscription) {
    const button = actionButton('Delete', 'delete', subscription);
    button.addEventListener('click', async () => {
      const sure = await confirmAction({
        title: `Delete “${subscription.name}”?`,
        message: `The server forgets its credential. Its ${people(subscription.users)} go back to signing in with their own login.`,
        confirm: 'Delete subscription',
        danger: true,
      });
      if (!sure) return;
      if ((await attempt(() => del(`/subscriptions/${subscription.id}`), `${subscription.name} was deleted.`)) !== undefined) {
        replace(this.editor);
        await this.load();
        document.getElementById('subscription-name')?.focus();
      }
    });
    return button;
  }
}
