// Settings → Counting rules: whether turns the agent starts count as
// prompts, the two per-turn caps (the backstop against what no rule
// foresaw), and whether a person's own API key may pass in team-credential
// mode. Disabled for viewers.

import { put } from '../api.js';
import { h } from '../dom.js';
import { AGENT_TURNS } from '../rules.js';
import { canEdit } from '../session.js';
import { actionForm, field } from './form.js';

/** The server's bounds (`TurnLimits::validate`). */
const CAPS = {
  max_requests_per_turn: { min: 10, max: 100000, what: 'Requests per prompt' },
  max_tokens_per_turn: { min: 10000, max: 1000000000, what: 'Tokens per prompt' },
};

function select(id, options, value) {
  const control = h(
    'select',
    { id },
    options.map(([key, text]) => h('option', { value: key }, text)),
  );
  control.value = value;
  return control;
}

function capInput(id, name, value) {
  const { min, max } = CAPS[name];
  return h('input', { id, type: 'number', min, max, step: 1, value, inputmode: 'numeric' });
}

/** The number in `input`, or an error that says what is allowed. */
function capValue(input, name) {
  const { min, max, what } = CAPS[name];
  const value = Number(input.value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${what}: a whole number from ${min.toLocaleString('en')} to ${max.toLocaleString('en')}.`);
  }
  return value;
}

export function countingForm(settings) {
  const agentTurns = select('agent-turns', AGENT_TURNS, settings.agent_turns);
  const requests = capInput('max-requests-per-turn', 'max_requests_per_turn', settings.turn_limits.max_requests_per_turn);
  const tokens = capInput('max-tokens-per-turn', 'max_tokens_per_turn', settings.turn_limits.max_tokens_per_turn);
  const personalKeys = select(
    'personal-api-keys',
    [
      ['deny', 'Refuse'],
      ['allow', 'Allow (metered, labelled as a personal key)'],
    ],
    settings.personal_api_keys,
  );
  return actionForm({
    id: 'counting-form',
    disabled: !canEdit(),
    submitLabel: 'Save counting rules',
    success: 'Counting rules saved.',
    children: [
      field(
        'Agent-started turns',
        agentTurns,
        'Turns Claude Code starts by itself (/loop wake-ups, finished background tasks). Each person can differ.',
      ),
      h(
        'fieldset',
        {},
        h('legend', {}, 'Per-turn caps: past either, the next request counts as a new prompt'),
        h(
          'div',
          { class: 'form__row' },
          field('Requests per prompt', requests),
          field('Tokens per prompt', tokens, 'Input, cache writes and output, as Anthropic reports them.'),
        ),
      ),
      field('Personal API keys in team-credential mode', personalKeys),
    ],
    action: () =>
      put('/settings', {
        agent_turns: agentTurns.value,
        turn_limits: {
          max_requests_per_turn: capValue(requests, 'max_requests_per_turn'),
          max_tokens_per_turn: capValue(tokens, 'max_tokens_per_turn'),
        },
        personal_api_keys: personalKeys.value,
      }),
  });
}
