// The form of one alert channel: its name, its kind (a new channel only)
// and the settings of that kind alone. Secrets are password fields; when a
// channel is edited they stay empty and an empty one keeps the stored
// value (the API's marker is sent back), so renaming needs no secret.

import { REDACTED, CHANNEL_KINDS, channelKind, channelKindLabel } from '../alerts.js';
import { h, replace, uid } from '../dom.js';
import { actionForm, field } from './form.js';

const KEEP_HINT = 'Stored; leave empty to keep it.';

function secretInput(id, stored) {
  return h('input', {
    id,
    type: 'password',
    autocomplete: 'off',
    autocapitalize: 'off',
    spellcheck: 'false',
    maxlength: 4096,
    placeholder: stored ? 'stored (unchanged)' : '',
  });
}

/** Header rows: a name and a secret value each, added and removed freely. */
class HeadersField {
  constructor(stored) {
    this.rows = h('div', { class: 'header-rows' });
    this.add = h('button', { type: 'button', class: 'button button--quiet', id: 'channel-add-header' }, '+ Add header');
    this.add.addEventListener('click', () => this.addRow('', false).querySelector('input').focus());
    this.element = h(
      'fieldset',
      { class: 'channel-headers' },
      h('legend', {}, 'Headers'),
      h('p', { class: 'field__hint' }, 'Sent with every alert; their values are kept secret.'),
      this.rows,
      this.add,
    );
    for (const name of Object.keys(stored ?? {})) this.addRow(name, true);
  }

  addRow(name, stored) {
    const id = uid('header');
    const nameInput = h('input', { id: `${id}-name`, type: 'text', value: name, autocomplete: 'off', spellcheck: 'false' });
    const value = secretInput(`${id}-value`, stored);
    const remove = h('button', { type: 'button', class: 'button button--quiet button--danger-text' }, '✕ Remove');
    const row = h(
      'div',
      { class: 'header-row', dataset: { stored: stored ? 'true' : '' } },
      field('Header name', nameInput),
      field('Header value', value, stored ? KEEP_HINT : undefined),
      remove,
    );
    remove.setAttribute('aria-label', `Remove the header ${name || ''}`.trim());
    remove.addEventListener('click', () => {
      row.remove();
      this.add.focus();
    });
    this.rows.append(row);
    return row;
  }

  value() {
    const headers = {};
    for (const row of this.rows.children) {
      const [nameInput, valueInput] = row.querySelectorAll('input');
      const name = nameInput.value.trim();
      if (!name) continue;
      const stored = row.dataset.stored === 'true' && name === nameInput.defaultValue;
      headers[name] = valueInput.value || (stored ? REDACTED : '');
    }
    return headers;
  }
}

/**
 * One setting's control and how to read it back. `stored` is the redacted
 * config of the channel being edited (null for a new one).
 */
function settingControl(spec, stored) {
  const id = `channel-${spec.name}`;
  const current = stored?.[spec.name];
  const hasSecret = current === REDACTED || (spec.type === 'secret' && current !== undefined && current !== null);
  switch (spec.type) {
    case 'secret': {
      const input = secretInput(id, hasSecret);
      const forget = spec.optional && hasSecret ? h('input', { type: 'checkbox', id: `${id}-forget` }) : null;
      const hint = [spec.hint, hasSecret ? KEEP_HINT : null].filter(Boolean).join(' ');
      const element = h(
        'div',
        { class: 'channel-setting' },
        field(spec.label + (spec.optional ? ' (optional)' : ''), input, hint || undefined),
        forget
          ? h('label', { class: 'check', for: forget.id }, forget, ` Forget the stored ${spec.label.toLowerCase()}`)
          : null,
      );
      const read = () => {
        if (forget?.checked) return undefined;
        if (input.value) return input.value;
        if (hasSecret) return REDACTED;
        return spec.optional ? undefined : '';
      };
      return { element, read };
    }
    case 'select': {
      const select = h(
        'select',
        { id },
        spec.options.map(([value, text]) => h('option', { value }, text)),
      );
      select.value = current ?? spec.options[0][0];
      return { element: field(spec.label, select, spec.hint), read: () => select.value };
    }
    case 'number': {
      const input = h('input', {
        id,
        type: 'number',
        min: spec.min,
        max: spec.max,
        step: 1,
        inputmode: 'numeric',
        value: current ?? spec.initial ?? '',
      });
      return { element: field(spec.label, input, spec.hint), read: () => Number(input.value) };
    }
    case 'list': {
      const area = h('textarea', { id, rows: 2, spellcheck: 'false' });
      area.value = (current ?? []).join('\n');
      const read = () =>
        area.value
          .split(/[\n,]/)
          .map((line) => line.trim())
          .filter(Boolean);
      return { element: field(spec.label, area, spec.hint), read };
    }
    case 'headers': {
      const headers = new HeadersField(current);
      return { element: headers.element, read: () => headers.value() };
    }
    case 'template': {
      const area = h('textarea', { id, rows: 3, spellcheck: 'false', placeholder: spec.placeholder ?? '' });
      area.value = current ?? '';
      const label = spec.label + (spec.optional ? ' (optional)' : '');
      return { element: field(label, area, spec.hint), read: () => area.value.trim() || undefined };
    }
    default: {
      const input = h('input', {
        id,
        type: spec.type === 'url' ? 'url' : 'text',
        value: current ?? '',
        placeholder: spec.placeholder ?? '',
        autocomplete: 'off',
        spellcheck: 'false',
      });
      const label = spec.label + (spec.optional ? ' (optional)' : '');
      const read = () => input.value.trim() || (spec.optional ? undefined : '');
      return { element: field(label, input, spec.hint), read };
    }
  }
}

/**
 * The form; `channel` is the one edited (null for a new one). `save(body)`
 * sends `{name, config}` and returns when it is stored.
 */
export function channelForm({ channel = null, save, onCancel }) {
  const editing = Boolean(channel);
  const name = h('input', {
    id: 'channel-name',
    type: 'text',
    maxlength: 100,
    value: channel?.name ?? '',
    placeholder: 'e.g. Team chat',
    autocomplete: 'off',
  });
  const kind = h(
    'select',
    { id: 'channel-kind' },
    CHANNEL_KINDS.map((k) => h('option', { value: k.kind }, k.label)),
  );
  kind.value = channel?.kind ?? 'slack';
  const settings = h('div', { class: 'channel-settings', id: 'channel-settings' });
  let readers = [];
  const showSettings = () => {
    const spec = channelKind(kind.value);
    const stored = editing ? channel.config : null;
    const controls = spec.fields.map((s) => [s.name, settingControl(s, stored)]);
    readers = controls.map(([key, control]) => [key, control.read]);
    replace(settings, controls.map(([, control]) => control.element));
    settings.dataset.kind = spec.kind;
  };
  kind.addEventListener('change', showSettings);
  showSettings();

  const form = actionForm({
    id: 'channel-form',
    submitLabel: editing ? 'Save channel' : 'Add channel',
    children: [
      h('h3', {}, editing ? `Edit “${channel.name}”` : 'Add a channel'),
      h(
        'div',
        { class: 'form__row' },
        field('Name', name),
        editing
          ? h('p', { class: 'channel-kind-fixed' }, h('span', { class: 'muted' }, 'Kind: '), channelKindLabel(channel.kind))
          : field('Kind', kind),
      ),
      settings,
    ],
    action: async () => {
      if (!name.value.trim()) throw new Error('Give the channel a name.');
      // Settings the form has no field for (e.g. Pushover's API URL) stay as they are.
      const config = { ...(editing ? channel.config : {}), kind: kind.value };
      for (const [key, read] of readers) {
        const value = read();
        if (value === undefined) delete config[key];
        else config[key] = value;
      }
      await save({ name: name.value.trim(), config });
    },
  });
  if (onCancel) {
    const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
    cancel.addEventListener('click', onCancel);
    form.querySelector('.form__actions').append(cancel);
  }
  return form;
}
