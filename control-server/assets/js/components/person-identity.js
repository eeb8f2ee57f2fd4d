// A person's page → E-mail and sign-in: the person's e-mail (admins change
// it; with "link by e-mail" on, a first single sign-on with this verified
// e-mail is linked to them) and the single sign-on identity linked to them,
// if any. Viewers read both.

import { put } from '../api.js';
import { h } from '../dom.js';
import { canEdit } from '../session.js';
import { actionForm, field } from './form.js';

function identityText(identity) {
  if (!identity) return h('span', { class: 'muted', id: 'user-identity' }, 'No single sign-on identity linked.');
  return h(
    'span',
    { id: 'user-identity', dataset: { identityId: identity.id } },
    identity.email ? h('strong', {}, identity.email) : null,
    identity.email ? ' · ' : null,
    h('span', { class: 'muted' }, 'subject '),
    h('code', {}, identity.subject),
  );
}

/** `onSaved(user)` after the e-mail changed. */
export function identityPanel(user, { onSaved }) {
  const identity = h(
    'dl',
    { class: 'facts' },
    h('div', {}, h('dt', {}, 'Single sign-on identity'), h('dd', {}, identityText(user.identity))),
  );
  let body;
  if (canEdit()) {
    const email = h('input', {
      id: 'user-email',
      type: 'email',
      autocomplete: 'off',
      maxlength: 254,
      value: user.email ?? '',
      placeholder: 'name@example.com',
    });
    body = actionForm({
      id: 'email-form',
      submitLabel: 'Save e-mail',
      success: (answer) => (answer.user.email ? `E-mail saved: ${answer.user.email}.` : 'E-mail removed.'),
      children: [
        field(
          'E-mail',
          email,
          'With “link by e-mail” on (Settings → Single sign-on), their first sign-in with this verified e-mail is linked to them.',
        ),
      ],
      action: async () => {
        const value = email.value.trim();
        if (value && !email.checkValidity()) throw new Error(`${value} is not an e-mail address.`);
        const answer = await put(`/users/${user.id}`, { email: value || null });
        onSaved?.(answer.user);
        return answer;
      },
    });
  } else {
    body = h(
      'dl',
      { class: 'facts' },
      h('div', {}, h('dt', {}, 'E-mail'), h('dd', { id: 'user-email' }, user.email ?? '—')),
    );
  }
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': 'identity-title', id: 'user-sign-in' },
    h('h2', { id: 'identity-title', class: 'panel__title' }, 'E-mail and single sign-on'),
    body,
    identity,
  );
}
