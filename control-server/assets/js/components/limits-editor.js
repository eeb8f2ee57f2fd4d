// The limits editor: one fieldset per rule, fields shown by rule type,
// problems shown next to the field as they are typed. The editor only holds
// and checks the rules; saving and previewing are the page's business
// (`onChange` is called after every edit).

import { h, uid } from '../dom.js';
import {
  MODELS,
  RULE_TYPES,
  TOKEN_KINDS,
  WINDOWS,
  cleanRule,
  describeRule,
  newRule,
  validateRule,
} from '../rules.js';

let zoneList = null;

/** One shared <datalist> of the IANA zone names the browser knows. */
function zoneListId() {
  if (!zoneList) {
    const zones = Intl.supportedValuesOf?.('timeZone') ?? [];
    zoneList = h('datalist', { id: 'time-zones' }, zones.map((zone) => h('option', { value: zone })));
    document.body.append(zoneList);
  }
  return zoneList.id;
}

function select(options, value) {
  const element = h('select', {}, options.map(([key, text]) => h('option', { value: key }, text)));
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

export class LimitsEditor {
  constructor({ rules = [], onChange = () => {}, label = 'Limits' } = {}) {
    this.onChange = onChange;
    this.rows = h('div', { class: 'rules' });
    this.emptyNote = h('p', { class: 'muted rules__empty' }, 'No limits: this person may use every model without restriction.');
    const add = h('button', { type: 'button', class: 'button', id: 'add-limit' }, '+ Add limit');
    add.addEventListener('click', () => {
      this.rules.push(newRule());
      this.renderRows();
      this.rows.lastElementChild?.querySelector('select')?.focus();
      this.changed();
    });
    this.element = h('div', { class: 'limits-editor', role: 'group', 'aria-label': label }, this.emptyNote, this.rows, h('div', { class: 'rules__add' }, add));
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

  /** Every rule's problems; true when there are none. */
  valid() {
    return this.rules.every((rule) => Object.keys(validateRule(rule)).length === 0);
  }

  changed() {
    this.onChange(this.value(), this.valid());
  }

  renderRows() {
    this.emptyNote.hidden = this.rules.length > 0;
    this.rows.replaceChildren(...this.rules.map((rule, index) => this.renderRule(rule, index)));
  }

  renderRule(rule, index) {
    const legend = h('legend', {}, `Limit ${index + 1}: `, h('span', { class: 'rule__summary' }, describeRule(cleanRule(rule))));
    const fieldset = h('fieldset', { class: 'rule', dataset: { index } }, legend);
    const problems = new Map();
    const refresh = () => {
      const found = validateRule(rule);
      for (const [name, node] of problems) {
        const message = found[name];
        node.message.textContent = message ?? '';
        node.message.hidden = !message;
        node.input.toggleAttribute('aria-invalid', Boolean(message));
      }
      legend.lastChild.textContent = Object.keys(found).length ? 'needs attention' : describeRule(cleanRule(rule));
    };
    const field = (name, text, input, hint) => {
      const id = uid('rule');
      const messageId = `${id}-problem`;
      const hintId = hint ? `${id}-hint` : null;
      input.id = id;
      input.name = name;
      input.setAttribute('aria-describedby', [hintId, messageId].filter(Boolean).join(' '));
      const message = h('span', { class: 'field__problem', id: messageId, hidden: true });
      problems.set(name, { input, message });
      input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input', () => {
        rule[name] = name === 'value' ? (input.value.trim() === '' ? NaN : Number(input.value)) : input.value;
        if (name === 'type') {
          // Credits count every model together.
          if (rule.type === 'credits') rule.model = '';
          fieldset.replaceWith(this.renderRule(rule, index));
          this.rows.children[index]?.querySelector('select')?.focus();
        } else {
          refresh();
        }
        this.changed();
      });
      return h(
        'div',
        { class: `field field--${name}` },
        h('label', { for: id }, text),
        input,
        hint ? h('span', { class: 'field__hint', id: hintId }, hint) : null,
        message,
      );
    };
    const fields = [field('type', 'Type', select(RULE_TYPES, rule.type))];
    if (rule.type !== 'credits') fields.push(field('model', 'Model', select(MODELS, rule.model)));
    if (rule.type === 'time_of_day') {
      fields.push(
        field('schedule_start', 'Allowed from', h('input', { type: 'time', value: rule.schedule_start, required: true })),
        field('schedule_end', 'until', h('input', { type: 'time', value: rule.schedule_end, required: true }), 'Earlier than the start: crosses midnight.'),
        field('schedule_tz', 'Time zone', h('input', { type: 'text', value: rule.schedule_tz, list: zoneListId(), placeholder: "the user's zone", autocomplete: 'off' })),
      );
    } else {
      if (rule.type === 'tokens') fields.push(field('kind', 'Counts', select(TOKEN_KINDS, rule.kind)));
      fields.push(
        field('window', 'Window', select(WINDOWS, rule.window)),
        field('value', 'Limit', h('input', { type: 'number', min: -1, step: 1, value: Number.isNaN(rule.value) ? '' : rule.value, inputmode: 'numeric' }), '-1 unlimited · 0 forbidden'),
      );
    }
    const remove = h('button', { type: 'button', class: 'button button--quiet rule__remove', 'aria-label': `Remove limit ${index + 1}` }, '✕ Remove');
    remove.addEventListener('click', () => {
      this.rules.splice(index, 1);
      this.renderRows();
      (this.rows.children[Math.min(index, this.rules.length - 1)]?.querySelector('select') ?? document.getElementById('add-limit'))?.focus();
      this.changed();
    });
    fieldset.append(h('div', { class: 'rule__fields' }, fields, remove));
    refresh();
    return fieldset;
  }
}
