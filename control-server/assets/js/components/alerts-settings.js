// Settings → Alerts: the channels alerts go to and the rules that raise
// them, side by side when there is room. The rules name the channels, the
// subscriptions and the people they concern, so those are loaded here too.

import { get } from '../api.js';
import { h } from '../dom.js';
import { ChannelsPanel } from './alert-channels.js';
import { RulesPanel } from './alert-rules.js';

export class AlertsSettings {
  constructor() {
    this.subscriptions = [];
    this.people = [];
    const named = (list, id, what) => list.find((item) => item.id === id)?.name ?? `${what} ${id}`;
    this.rules = new RulesPanel({
      names: {
        subscription: (id) => named(this.subscriptions, id, 'subscription'),
        person: (id) => named(this.people, id, 'person'),
      },
      choices: () => ({ subscriptions: this.subscriptions, people: this.people }),
    });
    this.channels = new ChannelsPanel({ onChange: (channels) => this.rules.setChannels(channels) });
    this.element = h(
      'section',
      { class: 'settings__wide alerts', id: 'alerts', 'aria-labelledby': 'alerts-title', tabindex: '-1' },
      h('h2', { id: 'alerts-title', class: 'section-title' }, 'Alerts'),
      h(
        'p',
        { class: 'muted alerts__intro' },
        'ccgate watches the subscriptions’ windows, people’s limits, kills, tampering, credentials and devices, ' +
          'and tells you through the channels below. A person can also get alerts about their own usage: ' +
          'set that up on their page.',
      ),
      h('div', { class: 'alerts__panels' }, this.channels.element, this.rules.element),
    );
  }

  async load() {
    const [{ subscriptions }, { users }] = await Promise.all([get('/subscriptions'), get('/users')]);
    this.subscriptions = subscriptions;
    this.people = users;
    await Promise.all([this.channels.load(), this.rules.load()]);
  }
}
