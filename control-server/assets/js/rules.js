// Limit rules in the quota crate's flat JSON shape
// ({type, model, window, value, kind, schedule_start, schedule_end, schedule_tz};
// a `share` rule is {type, window: five_hour|seven_day, value: percent}):
// their vocabulary, a sentence for each, the same checks the server makes
// (so mistakes show before saving), and the presets for new users; plus the
// words for block reasons, count reasons, agent turns and credential kinds.

import { limitValue } from './format.js';

export const RULE_TYPES = [
  ['per_model', 'Prompts'],
  ['credits', 'Credits'],
  ['tokens', 'Tokens'],
  ['time_of_day', 'Time of day'],
  ['share', 'Share of the subscription'],
];

/** `''` is "all models together". */
export const MODELS = [
  ['', 'All models'],
  ['opus', 'Opus'],
  ['sonnet', 'Sonnet'],
  ['haiku', 'Haiku'],
  ['other', 'Other'],
];

export const FAMILIES = ['opus', 'sonnet', 'haiku', 'other'];

export const WINDOWS = [
  ['daily', 'per day'],
  ['weekly', 'per week (from Monday)'],
  ['monthly', 'per month (from the 1st)'],
  ['sliding_24h', 'per sliding 24 h'],
  ['rolling_5h', 'per rolling 5 h'],
  ['sliding_7d', 'per sliding 7 days'],
];

/** The subscription's own windows, which a `share` rule caps a part of. */
export const SHARE_WINDOWS = [
  ['five_hour', '5-hour window'],
  ['seven_day', 'weekly window'],
];

export const TOKEN_KINDS = [
  ['total', 'all tokens'],
  ['input', 'input tokens'],
  ['output', 'output tokens'],
  ['cache_creation', 'cache-write tokens'],
  ['cache_read', 'cache-read tokens'],
];

const label = (pairs, key) => pairs.find(([k]) => k === (key ?? ''))?.[1] ?? key;

export const modelLabel = (model) => label(MODELS, model);
export const windowLabel = (window) => label(WINDOWS, window);
export const tokenKindLabel = (kind) => label(TOKEN_KINDS, kind);
export const typeLabel = (type) => label(RULE_TYPES, type);
export const shareWindowLabel = (window) => label(SHARE_WINDOWS, window);

const isShareWindow = (window) => SHARE_WINDOWS.some(([key]) => key === window);

/** What a limit counts, for a bar's label: `Opus prompts`, `Credits`, `All models output tokens`. */
export function metricLabel(rule) {
  switch (rule.type) {
    case 'per_model':
      return `${modelLabel(rule.model)} prompts`;
    case 'credits':
      return 'Credits';
    case 'tokens':
      return `${modelLabel(rule.model)} ${tokenKindLabel(rule.kind)}`;
    case 'share':
      return `Share of the subscription’s ${shareWindowLabel(rule.window)}`;
    default:
      return typeLabel(rule.type);
  }
}

/** One sentence: `Opus prompts per day: at most 5`. */
export function describeRule(rule) {
  if (rule.type === 'time_of_day') {
    const zone = rule.schedule_tz ? ` (${rule.schedule_tz})` : '';
    return `${modelLabel(rule.model)} allowed only ${rule.schedule_start}–${rule.schedule_end}${zone}`;
  }
  if (rule.type === 'share') {
    return `At most ${rule.value} % of the subscription’s ${shareWindowLabel(rule.window)}`;
  }
  const value = rule.value > 0 ? `at most ${limitValue(rule.value)}` : limitValue(rule.value);
  return `${metricLabel(rule)} ${windowLabel(rule.window)}: ${value}`;
}

/** Why the quota engine refused, in words (its `reason` codes). */
const REASONS = {
  killed: 'access killed',
  paused: 'paused',
  time_of_day: 'outside the allowed hours',
  per_model: 'prompt limit reached',
  credits: 'credit budget used up',
  tokens: 'token budget used up',
  no_policy: 'no policy on the device',
  unidentified_client: 'client without turn data refused',
  integrity: 'ccgate’s files were tampered with',
  path_not_allowed: 'a path ccgate does not forward',
  credential: 'a credential other than the team’s',
  share: 'their share of the subscription’s window used up',
};

export const reasonLabel = (reason) => REASONS[reason] ?? reason ?? 'blocked';

/** Why a request counted a prompt, in words (the events' `count_reason`). */
const COUNT_REASONS = {
  new_prompt: 'a new prompt',
  agent_turn: 'a turn the agent started',
  typed_during_turn: 'typed while a turn was running',
  rewritten_turn: 'an earlier turn sent again with other text',
  turn_cap: 'the turn went past its per-turn cap',
  unconfirmed: 'its labels did not hold up',
};

export const countReasonLabel = (reason) => COUNT_REASONS[reason] ?? reason ?? '';

/** Whether agent-started turns count: the team setting and a person's override. */
export const AGENT_TURNS = [
  ['count', 'Count as prompts'],
  ['free', 'Free (metered, not counted)'],
];

export const agentTurnsLabel = (value) => label(AGENT_TURNS, value);

/** What a subscription's credential is. */
export const CREDENTIAL_KINDS = [
  ['oauth_token', 'subscription token'],
  ['api_key', 'API key'],
];

export const credentialKindLabel = (kind) => label(CREDENTIAL_KINDS, kind);

const TIME = /^([01]?\d|2[0-3]):[0-5]\d$/;

function validZone(zone) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Problems of one rule by field name (empty when it is fine). */
export function validateRule(rule) {
  const problems = {};
  if (!RULE_TYPES.some(([type]) => type === rule.type)) problems.type = 'Choose a type.';
  if (rule.type === 'time_of_day') {
    if (!TIME.test(rule.schedule_start ?? '')) problems.schedule_start = 'Use HH:MM, 00:00 to 23:59.';
    if (!TIME.test(rule.schedule_end ?? '')) problems.schedule_end = 'Use HH:MM, 00:00 to 23:59.';
    if (!problems.schedule_start && rule.schedule_start === rule.schedule_end) {
      problems.schedule_end = 'Start and end are equal: no time would be allowed.';
    }
    if (rule.schedule_tz && !validZone(rule.schedule_tz)) {
      problems.schedule_tz = 'Not a known time zone (e.g. Europe/Berlin).';
    }
    return problems;
  }
  if (rule.type === 'share') {
    if (!isShareWindow(rule.window)) problems.window = 'Choose the 5-hour or the weekly window.';
    if (!Number.isInteger(rule.value) || rule.value < 1 || rule.value > 100) {
      problems.value = 'A whole percent from 1 to 100.';
    }
    return problems;
  }
  if (!WINDOWS.some(([window]) => window === rule.window)) problems.window = 'Choose a window.';
  if (!Number.isInteger(rule.value) || rule.value < -1) {
    problems.value = 'A whole number: -1 unlimited, 0 forbidden, or the cap.';
  }
  if (rule.type === 'tokens' && !TOKEN_KINDS.some(([kind]) => kind === rule.kind)) {
    problems.kind = 'Choose which tokens count.';
  }
  return problems;
}

/** A rule as the API wants it: only the fields its type uses. */
export function cleanRule(rule) {
  const model = rule.model || null;
  switch (rule.type) {
    case 'per_model':
      return { type: 'per_model', model, window: rule.window, value: rule.value };
    case 'credits':
      return { type: 'credits', window: rule.window, value: rule.value };
    case 'tokens':
      return { type: 'tokens', model, window: rule.window, value: rule.value, kind: rule.kind };
    case 'time_of_day':
      return {
        type: 'time_of_day',
        model,
        schedule_start: rule.schedule_start,
        schedule_end: rule.schedule_end,
        schedule_tz: rule.schedule_tz || null,
      };
    case 'share':
      return { type: 'share', window: rule.window, value: rule.value };
    default:
      return { ...rule };
  }
}

export function newRule(type = 'per_model') {
  const share = type === 'share';
  return {
    type,
    model: type === 'credits' ? '' : 'opus',
    window: share ? 'five_hour' : 'daily',
    value: share ? 40 : 10,
    kind: 'total',
    schedule_start: '09:00',
    schedule_end: '18:00',
    schedule_tz: '',
  };
}

/**
 * `rule` changed to `type`: fields the new type reads in another sense (a
 * share rule's window and percent) start from that type's defaults.
 */
export function retype(rule, type) {
  const changed = { ...rule, type };
  const wasShare = rule.type === 'share';
  const isShare = type === 'share';
  if (wasShare !== isShare) {
    const defaults = newRule(type);
    changed.window = defaults.window;
    changed.value = defaults.value;
  }
  // Credits count every model together.
  if (type === 'credits') changed.model = '';
  return changed;
}

/** claude-code-limiter's presets: daily credits and daily prompts per model. */
const PRESET_TABLE = {
  light: { credits: 50, opus: 3, sonnet: 10, haiku: 30 },
  medium: { credits: 100, opus: 5, sonnet: 20, haiku: 50 },
  heavy: { credits: 200, opus: 10, sonnet: 40, haiku: 100 },
  unlimited: null,
};

export const PRESETS = [
  ['light', 'Light'],
  ['medium', 'Medium'],
  ['heavy', 'Heavy'],
  ['unlimited', 'Unlimited'],
  ['custom', 'Custom'],
];

export function presetRules(name) {
  const preset = PRESET_TABLE[name];
  if (!preset) return [];
  return [
    { type: 'credits', window: 'daily', value: preset.credits },
    ...['opus', 'sonnet', 'haiku'].map((model) => ({
      type: 'per_model',
      model,
      window: 'daily',
      value: preset[model],
    })),
  ];
}
