// The limits editor: one fieldset per rule, fields shown by rule type,
// problems shown next to the field as they are typed. The editor only holds
// and checks the rules; saving and previewing are the page's business
// (`onChange` is called after every edit).

import { h, uid } from '../dom.js';
import {
  MODELS,
  RULE_TYPES,
  SHARE_WINDOWS,
  TOKEN_KINDS,
  WINDOWS,
  cleanRule,
  describeRule,
  newRule,
  retype,
  validateRule,
} from '../rules.js';

let zoneList = null;

/** One shared <datalist> of the IANA zone names the browser knows. */
function zoneListId() {
  if (!zoneList) {
    const zones = Intl.supportedValuesOf?.('timeZone') ?? [];
    zoneList = h(
      'datalist',
      { id: 'time-zones' },
      zones.map((zone) => h('option', { value: zone })),
    );
    document.body.append(zoneList);
  }
  return zoneList.id;
}

function select(options, value) {
  const element = h(
    'select',
    {},
    options.map(([key, text]) => h('option', { value: key }, text)),
  );
  element.value = value ?? '';
  return element;
}

/** Fills any field the rule's type needs but the stored rule lacks. */
function editable(rule) {
  const defaults = newRule(rule.type);
  return {
    ...defaults,
    ...Object.fromEntries(Object.entries(rule).filter(([, v]) => v !== null && v !== undefined)),
    model: rule.model ?? '',
  };
}

/**
 * A share rule: which of the subscription's windows, and the most of it the
 * person may use, in percent.
 */
function shareFields(rule) {
  const value = Number.isNaN(rule.value) ? '' : rule.value;
  return [
    ['window', 'Window', select(SHARE_WINDOWS, rule.window)],
    [
      'value',
      'At most (%)',
      h('input', { type: 'number', min: 1, max: 100, step: 1, value, inputmode: 'numeric' }),
      'percent of the subscription’s window, 1–100',
    ],
  ];
}

/**
 * The fields a rule of its type has: `[name, label, control, hint]`.
 * Credits count every model; time-of-day rules have a schedule instead of
 * a window and a value; token rules say which tokens count; share rules
 * cap a part of the subscription's own window.
 */
function fieldsFor(rule) {
  const fields = [['type', 'Type', select(RULE_TYPES, rule.type)]];
  if (rule.type === 'share') return [...fields, ...shareFields(rule)];
  if (rule.type !== 'credits') fields.push(['model', 'Model', select(MODELS, rule.model)]);
  if (rule.type === 'time_of_day') {
    fields.push(
      ['schedule_start', 'Allowed from', h('input', { type: 'time', value: rule.schedule_start, required: true })],
      [
        'schedule_end',
        'until',
        h('input', { type: 'time', value: rule.schedule_end, required: true }),
        'Earlier than the start: crosses midnight.',
      ],
      [
        'schedule_tz',
        'Time zone',
        h('input', {
          type: 'text',
          value: rule.schedule_tz,
          list: zoneListId(),
          placeholder: "the user's zone",
          autocomplete: 'off',
        }),
      ],
    );
    return fields;
  }
  if (rule.type === 'tokens') fields.push(['kind', 'Counts', select(TOKEN_KINDS, rule.kind)]);
  const value = Number.isNaN(rule.value) ? '' : rule.value;
  fields.push(
    ['window', 'Window', select(WINDOWS, rule.window)],
    [
      'value',
      'Limit',
      h('input', { type: 'number', min: -1, step: 1, value, inputmode: 'numeric' }),
      '-1 unlimited · 0 forbidden',
    ],
  );
  return fields;
}

/** A field's new value as the rule holds it. */
function read(name, input) {
  if (name !== 'value') return input.value;
  return input.value.trim() === '' ? NaN : Number(input.value);
}

export class LimitsEditor {
  constructor({ rules = [], onChange = () => {}, label = 'Limits' } = {}) {
    this.onChange = onChange;
    this.rows = h('div', { class: 'rules' });
    this.emptyNote = h(
      'p',
      { class: 'muted rules__empty' },
      'No limits: this person may use every model without restriction.',
    );
    this.addButton = h('button', { type: 'button', class: 'button', id: 'add-limit' }, '+ Add limit');
    this.addButton.addEventListener('click', () => {
      this.rules.push(newRule());
      this.renderRows();
      this.focusRule(this.rules.length - 1);
      this.changed();
    });
    this.element = h(
      'div',
      { class: 'limits-editor', role: 'group', 'aria-label': label },
      this.emptyNote,
      this.rows,
      h('div', { class: 'rules__add' }, this.addButton),
    );
    this.setRules(rules);
  }

  /** Replaces every rule (e.g. a preset, or the saved ones). */
  setRules(rules) {
    this.rules = rules.map(editable);
    this.renderRows();
  }

  /** The rules in the API's shape. */
  value() {
    return this.rules.map(cleanRule);
  }

  /** True when no rule has a problem. */
  valid() {
    return this.rules.every((rule) => Object.keys(validateRule(rule)).length === 0);
  }

  changed() {
    this.onChange(this.value(), this.valid());
  }

  /** Keyboard focus to a rule's first field (or "Add limit" when none is left). */
  focusRule(index) {
    const row = this.rows.children[Math.min(index, this.rules.length - 1)];
    (row?.querySelector('select') ?? this.addButton).focus();
  }

  renderRows() {
    this.emptyNote.hidden = this.rules.length > 0;
    this.rows.replaceChildren(...this.rules.map((rule, index) => this.renderRule(rule, index)));
  }

  renderRule(rule, index) {
    const summary = h('span', { class: 'rule__summary' });
    const fieldset = h(
      'fieldset',
      { class: 'rule', dataset: { index } },
      h('legend', {}, `Limit ${index + 1}: `, summary),
    );
    const problems = new Map();
    // Problems next to their fields, and the rule in words in the legend.
    const refresh = () => {
      const found = validateRule(rule);
      for (const [name, { input, message }] of problems) {
        message.textContent = found[name] ?? '';
        message.hidden = !found[name];
        input.toggleAttribute('aria-invalid', Boolean(found[name]));
      }
      summary.textContent = Object.keys(found).length ? 'needs attention' : describeRule(cleanRule(rule));
    };
    const controls = fieldsFor(rule).map(([name, text, input, hint]) => {
      const id = uid('rule');
      const message = h('span', { class: 'field__problem', id: `${id}-problem`, hidden: true });
      const hintNode = hint ? h('span', { class: 'field__hint', id: `${id}-hint` }, hint) : null;
      Object.assign(input, { id, name });
      input.setAttribute('aria-describedby', [hintNode?.id, message.id].filter(Boolean).join(' '));
      problems.set(name, { input, message });
      input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input', () => {
        if (name === 'type') {
          rule = retype(rule, input.value);
          this.rules[index] = rule;
          fieldset.replaceWith(this.renderRule(rule, index));
          this.focusRule(index);
        } else {
          rule[name] = read(name, input);
          refresh();
        }
        this.changed();
      });
      return h('div', { class: `field field--${name}` }, h('label', { for: id }, text), input, hintNode, message);
    });
    const remove = h(
      'button',
      { type: 'button', class: 'button button--quiet rule__remove', 'aria-label': `Remove limit ${index + 1}` },
      '✕ Remove',
    );
    remove.addEventListener('click', () => {
      this.rules.splice(index, 1);
      this.renderRows();
      this.focusRule(index);
      this.changed();
    });
    fieldset.append(h('div', { class: 'rule__fields' }, controls, remove));
    refresh();
    return fieldset;
  }
}
