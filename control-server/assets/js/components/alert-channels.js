// Settings → Alerts → Channels: where alerts go (Slack, Discord, Pushover,
// Matrix, ntfy, email, any webhook). Each shows its name, kind and where it
// delivers (never a secret); admins test it (one message now, the result in
// words beside it), edit it (secrets kept unless retyped), delete it after
// a confirmation, or add one. Viewers see the list only.

import { del, get, post, put } from '../api.js';
import { channelKindLabel, targetHost } from '../alerts.js';
import { h, replace } from '../dom.js';
import { canEdit } from '../session.js';
import { channelForm } from './channel-form.js';
import { confirmAction } from './dialog.js';
import { attempt, notify } from './notices.js';

function actionButton(text, action, channel) {
  return h(
    'button',
    {
      type: 'button',
      class: `button button--quiet${action === 'delete' ? ' button--danger-text' : ''}`,
      dataset: { action, channelId: channel.id },
      'aria-label': `${text} ${channel.name}`,
    },
    text,
  );
}

/** The outcome of a test: a mark and a word as well as a colour. */
function testResult(holder, result) {
  holder.hidden = false;
  holder.dataset.ok = String(result.ok);
  replace(
    holder,
    h('span', { class: 'test-result__mark', 'aria-hidden': 'true' }, result.ok ? '✓ ' : '✕ '),
    h('strong', {}, result.ok ? 'Test delivered: ' : 'Test failed: '),
    result.detail,
  );
}

export class ChannelsPanel {
  /** `onChange(channels)` after every load (the rules name their channels). */
  constructor({ onChange = () => {} } = {}) {
    this.onChange = onChange;
    this.channels = [];
    this.list = h('ul', { class: 'channel-list', id: 'alert-channels' });
    this.empty = h(
      'p',
      { class: 'muted', hidden: true },
      'No channel yet: alerts are only listed on the Activity page.',
    );
    this.editor = h('div', { id: 'channel-editor', class: 'alerts-editor' });
    this.addButton = canEdit()
      ? h('button', { type: 'button', class: 'button', id: 'add-channel' }, '+ Add channel')
      : null;
    this.addButton?.addEventListener('click', () => this.openForm(null));
    this.element = h(
      'section',
      { class: 'panel', 'aria-labelledby': 'alert-channels-title' },
      h('h3', { id: 'alert-channels-title', class: 'panel__title' }, 'Channels'),
      h(
        'p',
        { class: 'muted' },
        'Where alerts are sent. Webhook URLs, tokens and passwords are stored encrypted and never shown again.',
      ),
      this.empty,
      this.list,
      this.editor,
      this.addButton,
    );
  }

  async load() {
    const { channels } = await get('/alerts/channels');
    this.channels = channels;
    // A reload keeps the focus on the same button, and test results stay.
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset : null;
    const results = new Map(
      [...this.list.querySelectorAll('.test-result:not([hidden])')].map((r) => [r.dataset.channelId, r]),
    );
    replace(
      this.list,
      channels.map((channel) => this.item(channel, results.get(String(channel.id)))),
    );
    this.empty.hidden = channels.length > 0;
    if (focused?.action) {
      this.list.querySelector(`button[data-action="${focused.action}"][data-channel-id="${focused.channelId}"]`)?.focus();
    }
    this.onChange(channels);
  }

  item(channel, oldResult) {
    const result =
      oldResult ??
      h('p', { class: 'test-result', role: 'status', hidden: true, dataset: { channelId: channel.id } });
    return h(
      'li',
      { class: 'channel', dataset: { channelId: channel.id, kind: channel.kind } },
      h(
        'div',
        { class: 'channel__about' },
        h('strong', { class: 'channel__name' }, channel.name),
        ' ',
        h('span', { class: 'tag channel__kind' }, channelKindLabel(channel.kind)),
        h(
          'span',
          { class: 'muted channel__target', title: channel.target },
          h('span', { class: 'visually-hidden' }, 'delivers to '),
          targetHost(channel.target),
        ),
      ),
      canEdit()
        ? h(
            'div',
            { class: 'actions', role: 'group', 'aria-label': `Actions for ${channel.name}` },
            this.testButton(channel, () => result),
            this.editButton(channel),
            this.deleteButton(channel),
          )
        : null,
      result,
    );
  }

  testButton(channel, result) {
    const button = actionButton('Test', 'test', channel);
    button.addEventListener('click', async () => {
      const holder = result();
      button.disabled = true;
      holder.hidden = false;
      delete holder.dataset.ok;
      replace(holder, `Sending a test alert to ${channel.name}…`);
      try {
        testResult(holder, await post(`/alerts/channels/${channel.id}/test`));
      } catch (error) {
        testResult(holder, { ok: false, detail: error.message });
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  editButton(channel) {
    const button = actionButton('Edit', 'edit', channel);
    button.addEventListener('click', () => this.openForm(channel));
    return button;
  }

  deleteButton(channel) {
    const button = actionButton('Delete', 'delete', channel);
    button.addEventListener('click', async () => {
      const sure = await confirmAction({
        title: `Delete the channel “${channel.name}”?`,
        message: 'Rules that send to it stop doing so; its settings and secrets are forgotten.',
        confirm: 'Delete channel',
        danger: true,
      });
      if (!sure) return;
      const done = await attempt(() => del(`/alerts/channels/${channel.id}`), `${channel.name} was deleted.`);
      if (done !== undefined) {
        this.closeForm();
        await this.load();
        this.addButton?.focus();
      }
    });
    return button;
  }

  /** The form for `channel` (null: a new one) in the editor, focus in its first field. */
  openForm(channel) {
    const form = channelForm({
      channel,
      save: async (body) => {
        if (channel) {
          await put(`/alerts/channels/${channel.id}`, body);
          notify(`${body.name} saved.`, 'success');
        } else {
          const { channel: added } = await post('/alerts/channels', body);
          notify(`${added.name} added. Press Test to send it a message.`, 'success');
        }
        this.closeForm(channel);
        await this.load();
      },
      onCancel: () => this.closeForm(channel),
    });
    replace(this.editor, form);
    form.querySelector('input, select')?.focus();
  }

  /** Empties the editor; the focus goes back to where the form was opened. */
  closeForm(channel) {
    replace(this.editor);
    const back = channel
      ? this.list.querySelector(`button[data-action="edit"][data-channel-id="${channel.id}"]`)
      : this.addButton;
    back?.focus();
  }
}
