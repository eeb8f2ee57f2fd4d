// Add a user: a name, limits from a preset (claude-code-limiter's light,
// medium, heavy, unlimited) or edited by hand, then the install code and
// the ready-to-paste `sudo ccgate setup …` command with a copy button.

import { post } from '../api.js';
import { installCodePanel } from '../components/install-code.js';
import { LimitsEditor } from '../components/limits-editor.js';
import { h, pageReady, replace, uid } from '../dom.js';
import { PRESETS, presetRules } from '../rules.js';
import { canEdit } from '../session.js';

function presetPicker(selected, onPick) {
  const inputs = new Map();
  const group = h(
    'fieldset',
    { class: 'presets' },
    h('legend', {}, 'Limits preset'),
    h(
      'div',
      { class: 'segmented segmented--wrap' },
      PRESETS.map(([value, text]) => {
        const id = uid('preset');
        const input = h('input', { type: 'radio', name: 'preset', id, value, checked: value === selected });
        input.addEventListener('change', () => onPick(value));
        inputs.set(value, input);
        return h('span', { class: 'segmented__option' }, input, h('label', { for: id }, text));
      }),
    ),
    h(
      'p',
      { class: 'field__hint' },
      'Light, medium and heavy cap credits and each model’s prompts per day (the claude-code-limiter presets). Edit the limits below for anything else.',
    ),
  );
  return { element: group, select: (value) => (inputs.get(value).checked = true) };
}

export async function render(main) {
  if (!canEdit()) {
    replace(
      main,
      h('section', { class: 'panel' }, h('h1', {}, 'Add user'), h('p', {}, 'Viewers cannot add users. Ask an admin.')),
    );
    pageReady();
    return;
  }
  let applyingPreset = false;
  const picker = presetPicker('medium', (preset) => {
    if (preset === 'custom') return;
    applyingPreset = true;
    editor.setRules(presetRules(preset));
    applyingPreset = false;
  });
  const editor = new LimitsEditor({
    rules: presetRules('medium'),
    label: 'Limits of the new user',
    onChange: () => {
      if (!applyingPreset) picker.select('custom');
    },
  });
  const name = h('input', {
    id: 'new-name',
    name: 'name',
    type: 'text',
    required: true,
    maxlength: 100,
    autocomplete: 'off',
  });
  const zone = h('input', {
    id: 'new-zone',
    name: 'time_zone',
    type: 'text',
    autocomplete: 'off',
    placeholder: 'the team’s zone',
    'aria-describedby': 'new-zone-hint',
  });
  const problem = h('p', { class: 'form__problem', role: 'alert', hidden: true, id: 'add-user-problem' });
  const submit = h('button', { type: 'submit', class: 'button button--primary', id: 'create-user' }, 'Create user');
  const result = h('div', { id: 'add-user-result' });
  const form = h(
    'form',
    { class: 'panel form', novalidate: true, id: 'add-user-form' },
    h('div', { class: 'field' }, h('label', { for: 'new-name' }, 'Name'), name),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-zone' }, 'Time zone (optional)'),
      zone,
      h(
        'span',
        { class: 'field__hint', id: 'new-zone-hint' },
        'Days, weeks and months start at midnight here. Empty: the team’s zone.',
      ),
    ),
    picker.element,
    editor.element,
    problem,
    h('div', { class: 'form__actions' }, submit),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const fail = (message, field) => {
      problem.textContent = message;
      problem.hidden = false;
      field?.focus();
    };
    if (!name.value.trim()) return fail('Enter a name.', name);
    if (!editor.valid()) return fail('Some limits need attention (marked above).');
    submit.disabled = true;
    try {
      const body = { name: name.value.trim(), limits: editor.value() };
      if (zone.value.trim()) body.time_zone = zone.value.trim();
      const answer = await post('/users', body);
      form.hidden = true;
      replace(
        result,
        installCodePanel(answer, answer.user.name),
        h(
          'p',
          { class: 'form__actions' },
          h(
            'a',
            { class: 'button button--primary', href: `/dashboard/users/${answer.user.id}`, id: 'open-new-user' },
            `Open ${answer.user.name}`,
          ),
          h('a', { class: 'button', href: '/dashboard/users/new' }, 'Add another user'),
        ),
      );
      result.querySelector('#install-code').focus();
    } catch (error) {
      fail(error.message);
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h(
        'div',
        {},
        h('h1', {}, 'Add user'),
        h('p', { class: 'muted' }, 'Create the person, then run the setup command on their machine.'),
      ),
    ),
    form,
    result,
  );
  name.focus();
  pageReady();
}
