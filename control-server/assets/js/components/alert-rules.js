// Settings → Alerts → Rules: what raises an alert. Each rule shows its name,
// what it watches in a sentence, where it sends and how often at most, and
// a switch that turns it on or off at once; admins edit one in place, add
// one or delete one after a confirmation. Rules a person subscribed to
// (about their own usage) say whose they are.

import { del, get, post, put } from '../api.js';
import { channelsText, cooldownText, describeCondition } from '../alerts.js';
import { h, replace } from '../dom.js';
import { canEdit } from '../session.js';
import { confirmAction } from './dialog.js';
import { attempt, notify } from './notices.js';
import { ruleForm } from './rule-form.js';

/** The API's body for `rule` with `changes` (a PUT replaces the whole rule). */
export function ruleBody(rule, changes = {}) {
  return {
    name: rule.name,
    condition: rule.condition,
    channels: rule.channels,
    cooldown_secs: rule.cooldown_secs,
    enabled: rule.enabled,
    owner_user_id: rule.owner_user_id ?? null,
    ...changes,
  };
}

/**
 * An on/off switch for `rule`: a real button with `role=switch`, its state
 * in words ("On", "Off") as well as its look. `onToggled(rule)` gets the
 * stored rule. Viewers see the state in words only.
 */
export function ruleSwitch(rule, onToggled) {
  if (!canEdit()) {
    return h('span', { class: `switch-state switch-state--${rule.enabled ? 'on' : 'off'}` }, rule.enabled ? 'On' : 'Off');
  }
  const button = h(
    'button',
    {
      type: 'button',
      class: 'switch',
      role: 'switch',
      'aria-checked': String(rule.enabled),
      'aria-label': `${rule.name}: alerts on`,
      dataset: { action: 'toggle', ruleId: rule.id },
    },
    h('span', { class: 'switch__track', 'aria-hidden': 'true' }, h('span', { class: 'switch__thumb' })),
    h('span', { class: 'switch__word' }, rule.enabled ? 'On' : 'Off'),
  );
  button.addEventListener('click', async () => {
    button.disabled = true;
    const wanted = !rule.enabled;
    const answer = await attempt(
      () => put(`/alerts/rules/${rule.id}`, ruleBody(rule, { enabled: wanted })),
      `${rule.name}: ${wanted ? 'on' : 'off'}.`,
    );
    button.disabled = false;
    if (answer) onToggled(answer.rule);
  });
  return button;
}

function actionButton(text, action, rule) {
  return h(
    'button',
    {
      type: 'button',
      class: `button button--quiet${action === 'delete' ? ' button--danger-text' : ''}`,
      dataset: { action, ruleId: rule.id },
      'aria-label': `${text} the rule ${rule.name}`,
    },
    text,
  );
}

export class RulesPanel {
  /** `names` has `subscription(id)` and `person(id)`; `choices` the lists for the form. */
  constructor({ names, choices }) {
    this.names = names;
    this.choices = choices;
    this.rules = [];
    this.channels = [];
    this.list = h('ul', { class: 'alert-rule-list', id: 'alert-rules' });
    this.editor = h('div', { id: 'rule-editor', class: 'alerts-editor' });
    this.addButton = canEdit() ? h('button', { type: 'button', class: 'button', id: 'add-rule' }, '+ Add rule') : null;
    this.addButton?.addEventListener('click', () => this.openForm(null));
    this.element = h(
      'section',
      { class: 'panel', 'aria-labelledby': 'alert-rules-title' },
      h('h3', { id: 'alert-rules-title', class: 'panel__title' }, 'Rules'),
      h(
        'p',
        { class: 'muted' },
        'What raises an alert. A rule fires once when its level is crossed and again only after its quiet time ' +
          'and once the value fell 5 points below. Every alert is listed on the Activity page.',
      ),
      this.list,
      this.editor,
      this.addButton,
    );
  }

  /** The channels changed (names, or one deleted): the rules say so. */
  setChannels(channels) {
    this.channels = channels;
    if (this.rules.length) this.show();
  }

  async load() {
    const { rules } = await get('/alerts/rules');
    this.rules = rules;
    this.show();
  }

  /** Draws the rules; a rule being edited keeps its form unless `keepEditing` is false. */
  show({ keepEditing = true } = {}) {
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset : null;
    const editing = keepEditing ? this.list.querySelector('.alert-rule--editing') : null;
    replace(
      this.list,
      this.rules.map((rule) => (editing?.dataset.ruleId === String(rule.id) ? editing : this.item(rule))),
    );
    if (focused?.action) {
      this.list.querySelector(`button[data-action="${focused.action}"][data-rule-id="${focused.ruleId}"]`)?.focus();
    }
  }

  item(rule) {
    const byId = new Map(this.channels.map((c) => [c.id, c]));
    const owner = rule.owner_user_id ? this.names.person(rule.owner_user_id) : null;
    const details = [
      `→ ${channelsText(rule.channels, byId)}`,
      cooldownText(rule.cooldown_secs),
      owner ? `subscribed by ${owner} (their own usage)` : null,
    ].filter(Boolean);
    return h(
      'li',
      { class: `alert-rule${rule.enabled ? '' : ' alert-rule--off'}`, dataset: { ruleId: rule.id, type: rule.condition.type } },
      h(
        'div',
        { class: 'alert-rule__main' },
        ruleSwitch(rule, (stored) => this.replaceRule(stored)),
        h(
          'div',
          { class: 'alert-rule__about' },
          h('strong', { class: 'alert-rule__name' }, rule.name),
          h('span', { class: 'alert-rule__condition' }, describeCondition(rule.condition, this.names)),
          h('span', { class: 'alert-rule__details muted' }, details.join(' · ')),
        ),
      ),
      canEdit()
        ? h(
            'div',
            { class: 'actions', role: 'group', 'aria-label': `Actions for ${rule.name}` },
            this.editButton(rule),
            this.deleteButton(rule),
          )
        : null,
    );
  }

  replaceRule(stored) {
    this.rules = this.rules.map((rule) => (rule.id === stored.id ? stored : rule));
    const old = this.list.querySelector(`.alert-rule[data-rule-id="${stored.id}"]`);
    const fresh = this.item(stored);
    old?.replaceWith(fresh);
    fresh.querySelector('button[data-action="toggle"]')?.focus();
  }

  editButton(rule) {
    const button = actionButton('Edit', 'edit', rule);
    button.addEventListener('click', () => this.openForm(rule));
    return button;
  }

  deleteButton(rule) {
    const button = actionButton('Delete', 'delete', rule);
    button.addEventListener('click', async () => {
      const sure = await confirmAction({
        title: `Delete the rule “${rule.name}”?`,
        message: 'No more alerts come from it. Alerts it raised stay on the Activity page.',
        confirm: 'Delete rule',
        danger: true,
      });
      if (!sure) return;
      if ((await attempt(() => del(`/alerts/rules/${rule.id}`), `${rule.name} was deleted.`)) !== undefined) {
        replace(this.editor);
        await this.load();
        this.addButton?.focus();
      }
    });
    return button;
  }

  /**
   * The form for `rule` in place of its row (a new rule's below the list),
   * focus in its first field. One form at a time.
   */
  openForm(rule) {
    this.show({ keepEditing: false });
    replace(this.editor);
    const form = ruleForm({
      rule,
      channels: this.channels,
      choices: this.choices(),
      save: async (body) => {
        if (rule) {
          await put(`/alerts/rules/${rule.id}`, body);
          notify(`${body.name} saved.`, 'success');
        } else {
          await post('/alerts/rules', body);
          notify(`${body.name} added.`, 'success');
        }
        replace(this.editor);
        this.list.querySelector('.alert-rule--editing')?.classList.remove('alert-rule--editing');
        await this.load();
        this.focusRule(rule);
      },
      onCancel: () => {
        replace(this.editor);
        this.show({ keepEditing: false });
        this.focusRule(rule);
      },
    });
    if (rule) {
      const row = this.list.querySelector(`.alert-rule[data-rule-id="${rule.id}"]`);
      row.replaceChildren(form);
      row.classList.add('alert-rule--editing');
    } else {
      replace(this.editor, form);
    }
    form.querySelector('input, select')?.focus();
  }

  focusRule(rule) {
    const target = rule
      ? this.list.querySelector(`button[data-action="edit"][data-rule-id="${rule.id}"]`)
      : this.addButton;
    target?.focus();
  }
}
