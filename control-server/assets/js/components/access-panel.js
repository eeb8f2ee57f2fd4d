// A user's sign-in and agent turns: their own Claude login or one of the
// team's subscriptions (team-credential mode), and whether turns the agent
// starts count as their prompts (the team's setting unless overridden).
// Admins change both; viewers read them.

import { put } from '../api.js';
import { h } from '../dom.js';
import { AGENT_TURNS, agentTurnsLabel, credentialKindLabel } from '../rules.js';
import { canEdit } from '../session.js';
import { actionForm, field } from './form.js';

const PERSONAL = 'Personal login (their own Claude login)';

/** How the person signs in, in words. */
export function signInText(user) {
  const subscription = user.subscription;
  return subscription ? `team credential: ${subscription.name}` : 'own login';
}

function subscriptionSelect(user, subscriptions) {
  const control = h(
    'select',
    { id: 'user-subscription' },
    h('option', { value: '' }, PERSONAL),
    // Accounts seen in traffic have no credential to hand out.
    subscriptions
      .filter((s) => s.origin !== 'seen')
      .map((s) =>
        h('option', { value: String(s.id) }, `${s.name} (${credentialKindLabel(s.kind)} …${s.credential_hint})`),
      ),
  );
  control.value = user.subscription_id === null ? '' : String(user.subscription_id);
  return control;
}

function agentTurnsSelect(user, teamSetting) {
  const control = h(
    'select',
    { id: 'user-agent-turns' },
    h('option', { value: '' }, `Team setting (${agentTurnsLabel(teamSetting).toLowerCase()})`),
    AGENT_TURNS.map(([value, text]) => h('option', { value }, text)),
  );
  control.value = user.agent_turns ?? '';
  return control;
}

function readOnly(user) {
  return h(
    'dl',
    { class: 'facts' },
    h('div', {}, h('dt', {}, 'Claude sign-in'), h('dd', {}, signInText(user))),
    h(
      'div',
      {},
      h('dt', {}, 'Agent-started turns'),
      h('dd', {}, `${agentTurnsLabel(user.effective_agent_turns)}${user.agent_turns ? '' : ' (team setting)'}`),
    ),
  );
}

/** `onSaved(user)` after a change. */
export function accessPanel(user, { subscriptions, teamAgentTurns, onSaved }) {
  const body = canEdit()
    ? (() => {
        const subscription = subscriptionSelect(user, subscriptions);
        const agentTurns = agentTurnsSelect(user, teamAgentTurns);
        return actionForm({
          id: 'access-form',
          submitLabel: 'Save sign-in and agent turns',
          success: 'Saved: their devices learn it within a second.',
          children: [
            h(
              'div',
              { class: 'form__row' },
              field(
                'Claude sign-in',
                subscription,
                'With a subscription, ccgate swaps its credential in; the person never holds it.',
              ),
              field('Agent-started turns', agentTurns),
            ),
          ],
          action: async () => {
            const answer = await put(`/users/${user.id}`, {
              subscription_id: subscription.value ? Number(subscription.value) : null,
              agent_turns: agentTurns.value || null,
            });
            onSaved(answer.user);
          },
        });
      })()
    : readOnly(user);
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': 'access-title' },
    h('h2', { id: 'access-title', class: 'panel__title' }, 'Sign-in and agent turns'),
    body,
  );
}
