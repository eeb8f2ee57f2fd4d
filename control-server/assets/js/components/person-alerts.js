// A person's page → Alerts about their own usage: the rules this person is
// subscribed to (nearing one of their limits, being stopped with the kill
// switch), each with its channel and an on/off switch, and a form to
// subscribe them: what about, from which percent, to which channel (a
// channel they read: their email, their ntfy topic…). Viewers see the list.

import { del, get, post } from '../api.js';
import { channelsText, cooldownText, describeCondition } from '../alerts.js';
import { h, replace } from '../dom.js';
import { canEdit } from '../session.js';
import { ruleSwitch } from './alert-rules.js';
import { confirmAction } from './dialog.js';
import { actionForm, field } from './form.js';
import { attempt } from './notices.js';

const ABOUT = [
  ['limit_share', 'Nearing one of their limits'],
  ['kill', 'Being stopped with the kill switch'],
];

export class PersonAlerts {
  constructor(user) {
    this.user = user;
    this.rules = [];
    this.channels = [];
    this.list = h('ul', { class: 'alert-rule-list', id: 'person-alerts' });
    this.formHolder = h('div');
    this.element = h(
      'section',
      { class: 'panel person-alerts', 'aria-labelledby': 'person-alerts-title' },
      h('h2', { id: 'person-alerts-title', class: 'panel__title' }, `Alerts for ${user.name}`),
      h(
        'p',
        { class: 'muted' },
        `Alerts about ${user.name}’s own usage, sent to a channel they read. `,
        'The team’s alerts are set up in ',
        h('a', { href: '/dashboard/settings#alerts' }, 'Settings → Alerts'),
        '.',
      ),
      this.list,
      this.formHolder,
    );
  }

  async load() {
    const [{ rules }, { channels }] = await Promise.all([get('/alerts/rules'), get('/alerts/channels')]);
    this.rules = rules.filter((rule) => rule.owner_user_id === this.user.id);
    this.channels = channels;
    this.show();
    if (canEdit()) replace(this.formHolder, this.channels.length ? this.form() : this.noChannel());
  }

  show() {
    const byId = new Map(this.channels.map((c) => [c.id, c]));
    const names = { person: () => this.user.name };
    replace(
      this.list,
      this.rules.length
        ? this.rules.map((rule) =>
            h(
              'li',
              { class: `alert-rule${rule.enabled ? '' : ' alert-rule--off'}`, dataset: { ruleId: rule.id } },
              h(
                'div',
                { class: 'alert-rule__main' },
                ruleSwitch(rule, (stored) => this.replaceRule(stored)),
                h(
                  'div',
                  { class: 'alert-rule__about' },
                  h('strong', { class: 'alert-rule__name' }, rule.name),
                  h('span', { class: 'alert-rule__condition' }, describeCondition(rule.condition, names)),
                  h(
                    'span',
                    { class: 'alert-rule__details muted' },
                    `→ ${channelsText(rule.channels, byId)} · ${cooldownText(rule.cooldown_secs)}`,
                  ),
                ),
              ),
              canEdit() ? this.deleteButton(rule) : null,
            ),
          )
        : h('li', { class: 'muted alert-rule-list__empty' }, `${this.user.name} gets no alerts of their own.`),
    );
  }

  replaceRule(stored) {
    this.rules = this.rules.map((rule) => (rule.id === stored.id ? stored : rule));
    this.show();
    this.list.querySelector(`button[data-rule-id="${stored.id}"][data-action="toggle"]`)?.focus();
  }

  noChannel() {
    return h(
      'p',
      { class: 'muted' },
      'To subscribe them, first add a channel they read in ',
      h('a', { href: '/dashboard/settings#alerts' }, 'Settings → Alerts'),
      '.',
    );
  }

  deleteButton(rule) {
    const button = h(
      'button',
      {
        type: 'button',
        class: 'button button--quiet button--danger-text',
        dataset: { action: 'delete', ruleId: rule.id },
        'aria-label': `Stop the alert ${rule.name}`,
      },
      'Stop',
    );
    button.addEventListener('click', async () => {
      const sure = await confirmAction({
        title: `Stop “${rule.name}”?`,
        message: `${this.user.name} gets no more of these alerts.`,
        confirm: 'Stop the alert',
        danger: true,
      });
      if (!sure) return;
      if ((await attempt(() => del(`/alerts/rules/${rule.id}`), 'Alert stopped.')) !== undefined) await this.load();
    });
    return button;
  }

  form() {
    const user = this.user;
    const about = h(
      'select',
      { id: 'person-alert-about' },
      ABOUT.map(([value, text]) => h('option', { value }, text)),
    );
    const threshold = h('input', {
      id: 'person-alert-threshold',
      type: 'number',
      min: 1,
      max: 100,
      step: 1,
      value: 80,
      inputmode: 'numeric',
    });
    const thresholdField = field('From (% of a limit)', threshold, 'Their tightest limit counts.');
    about.addEventListener('change', () => {
      thresholdField.hidden = about.value !== 'limit_share';
    });
    const channel = h(
      'select',
      { id: 'person-alert-channel' },
      this.channels.map((c) => h('option', { value: c.id }, c.name)),
    );
    return actionForm({
      id: 'person-alert-form',
      submitLabel: `Subscribe ${user.name}`,
      success: `${user.name} is subscribed.`,
      children: [
        h('h3', {}, `Subscribe ${user.name} to an alert`),
        h('div', { class: 'form__row' }, field('About', about), thresholdField, field('Send to', channel)),
      ],
      action: async () => {
        const percent = Number(threshold.value);
        const share = about.value === 'limit_share';
        if (share && !(percent > 0 && percent <= 100)) throw new Error('The percent is from 1 to 100.');
        const condition = share ? { type: 'limit_share', threshold: percent, user_id: user.id } : { type: 'kill' };
        await post('/alerts/rules', {
          name: share ? `${user.name} at ${percent} % of a limit` : `${user.name} stopped with the kill switch`,
          condition,
          channels: [Number(channel.value)],
          owner_user_id: user.id,
        });
        await this.load();
      },
    });
  }
}
