// The form of one alert rule: its name, what it watches (the condition's
// type for a new rule, then only that type's fields: window, threshold,
// subscription, person, points, days or hours), the channels it sends to,
// its cooldown in hours and whether it is on. Problems show at the field.

import {
  CONDITION_FIELDS,
  CONDITION_TYPES,
  PLAN_WINDOWS,
  cooldownHours,
  cooldownSeconds,
  newCondition,
  validateCondition,
} from '../alerts.js';
import { h, replace } from '../dom.js';
import { actionForm, field } from './form.js';

const DEFAULT_COOLDOWN_SECS = 4 * 3600;

function options(pairs, value) {
  const select = h(
    'select',
    {},
    pairs.map(([key, text]) => h('option', { value: key }, text)),
  );
  select.value = value ?? '';
  return select;
}

function numberInput(value, { min, max, step = 1 }) {
  return h('input', { type: 'number', min, max, step, value: value ?? '', inputmode: 'decimal' });
}

/**
 * A condition field's control, label and hint. `choices` has the
 * subscriptions and people a rule can be narrowed to.
 */
function conditionControl(name, kind, condition, choices) {
  switch (kind) {
    case 'window':
      return [options(PLAN_WINDOWS, condition.window), 'Window'];
    case 'percent':
      return [numberInput(condition.threshold, { min: 1, max: 100 }), 'Threshold (%)', 'Percent of the window or limit.'];
    case 'points':
      return [numberInput(condition.points, { min: 1, max: 100 }), 'Rise (percentage points)'];
    case 'days':
      return [numberInput(condition.days, { min: 1, max: 365 }), 'Days before expiry'];
    case 'hours':
      return [numberInput(condition.hours, { min: 1, max: 2160 }), 'Hours without a sign of life'];
    case 'subscription':
      return [
        options(
          [['', 'Every subscription'], ...choices.subscriptions.map((s) => [String(s.id), s.name])],
          condition.subscription_id ? String(condition.subscription_id) : '',
        ),
        'Subscription',
      ];
    case 'person':
      return [
        options(
          [['', 'Everyone'], ...choices.people.map((p) => [String(p.id), p.name])],
          condition.user_id ? String(condition.user_id) : '',
        ),
        'Person',
      ];
    default:
      return [h('input', { type: 'text' }), name];
  }
}

/** A control's value as the condition holds it (ids and numbers as numbers, none as absent). */
function readCondition(kind, control) {
  const raw = control.value.trim();
  if (kind === 'window') return raw;
  if (raw === '') return kind === 'subscription' || kind === 'person' ? undefined : NaN;
  return Number(raw);
}

/**
 * The form. `rule` is the one edited (null for a new one); `channels` the
 * team's channels; `save(body)` sends the API's body and returns when stored.
 */
export function ruleForm({ rule = null, channels, choices, save, onCancel }) {
  const editing = Boolean(rule);
  let condition = { ...(rule?.condition ?? newCondition('utilization')) };
  const name = h('input', {
    id: 'rule-name',
    type: 'text',
    maxlength: 100,
    value: rule?.name ?? '',
    placeholder: 'e.g. 5-hour window at 90 %',
    autocomplete: 'off',
  });
  const type = options(CONDITION_TYPES, condition.type);
  type.id = 'rule-type';
  const conditionFields = h('div', { class: 'form__row rule-condition', id: 'rule-condition' });
  let problems = [];
  const showCondition = () => {
    const fields = (CONDITION_FIELDS[condition.type] ?? []).filter(
      // A person's own rule stays about that person.
      ([key]) => !(rule?.owner_user_id && key === 'user_id'),
    );
    problems = fields.map(([key, kind]) => {
      const [control, label, hint] = conditionControl(key, kind, condition, choices);
      control.id = `rule-${key}`;
      control.name = key;
      const message = h('span', { class: 'field__problem', id: `rule-${key}-problem`, hidden: true });
      control.addEventListener(control.tagName === 'SELECT' ? 'change' : 'input', () => {
        const value = readCondition(kind, control);
        if (value === undefined) delete condition[key];
        else condition[key] = value;
        check();
      });
      const wrapper = field(label, control, hint);
      wrapper.append(message);
      control.setAttribute('aria-describedby', [control.getAttribute('aria-describedby'), message.id].filter(Boolean).join(' '));
      return { key, control, message, wrapper };
    });
    replace(conditionFields, problems.map(({ wrapper }) => wrapper));
  };
  const check = () => {
    const found = validateCondition(condition);
    for (const { key, control, message } of problems) {
      message.textContent = found[key] ?? '';
      message.hidden = !found[key];
      control.toggleAttribute('aria-invalid', Boolean(found[key]));
    }
    return Object.keys(found).length === 0;
  };
  type.addEventListener('change', () => {
    condition = newCondition(type.value);
    showCondition();
  });
  showCondition();

  const chosen = new Set(rule?.channels ?? []);
  const channelBoxes = channels.map((channel) => {
    const box = h('input', {
      type: 'checkbox',
      id: `rule-channel-${channel.id}`,
      name: 'rule-channel',
      value: channel.id,
      checked: chosen.has(channel.id),
    });
    return [channel, box];
  });
  const channelSet = h(
    'fieldset',
    { class: 'rule-channels' },
    h('legend', {}, 'Send to'),
    channelBoxes.length
      ? channelBoxes.map(([channel, box]) => h('label', { class: 'check', for: box.id }, box, ` ${channel.name}`))
      : h('p', { class: 'muted' }, 'No channel yet: add one above. Without one the alert is listed on the Activity page only.'),
  );
  const cooldown = h('input', {
    id: 'rule-cooldown',
    type: 'number',
    min: 0,
    max: 720,
    step: 0.25,
    inputmode: 'decimal',
    value: cooldownHours(rule?.cooldown_secs ?? DEFAULT_COOLDOWN_SECS),
  });
  const enabled = h('input', { type: 'checkbox', id: 'rule-enabled', checked: rule ? rule.enabled : true });

  const form = actionForm({
    id: 'rule-form',
    submitLabel: editing ? 'Save rule' : 'Add rule',
    children: [
      h('h3', {}, editing ? `Edit “${rule.name}”` : 'Add a rule'),
      h(
        'div',
        { class: 'form__row' },
        field('Name', name),
        editing ? null : field('Watches', type),
      ),
      conditionFields,
      channelSet,
      h(
        'div',
        { class: 'form__row' },
        field('Quiet time after an alert (hours)', cooldown, 'The same rule and subject alert again only after this.'),
        h('label', { class: 'check rule-enabled', for: enabled.id }, enabled, ' On: the rule is watched'),
      ),
    ],
    action: async () => {
      if (!check()) throw new Error('Fix the marked fields first.');
      if (!name.value.trim()) throw new Error('Give the rule a name.');
      const hours = Number(cooldown.value);
      if (cooldown.value.trim() === '' || !(hours >= 0 && hours <= 720)) {
        throw new Error('The quiet time is 0 to 720 hours.');
      }
      await save({
        name: name.value.trim(),
        condition,
        channels: channelBoxes.filter(([, box]) => box.checked).map(([channel]) => channel.id),
        cooldown_secs: cooldownSeconds(hours),
        enabled: enabled.checked,
        owner_user_id: rule?.owner_user_id ?? null,
      });
    },
  });
  if (onCancel) {
    const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
    cancel.addEventListener('click', onCancel);
    form.querySelector('.form__actions').append(cancel);
  }
  return form;
}
