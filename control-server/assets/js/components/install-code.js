// An install code with its ready-to-paste setup command.

import { h } from '../dom.js';
import { dateTime } from '../format.js';
import { copyField } from './copy.js';

/** `answer` is the API's `{install_code, install_code_expires_at, setup_command}`. */
export function installCodePanel(answer, name) {
  return h(
    'section',
    { class: 'panel install-code', id: 'install-code', 'aria-labelledby': 'install-code-title', tabindex: '-1' },
    h('h2', { id: 'install-code-title', class: 'panel__title' }, `Install ccgate on ${name}’s machine`),
    h('p', {}, 'Run this once on that machine (macOS or Linux, with ccgate installed):'),
    copyField(answer.setup_command, { label: 'Setup command', multiline: true }),
    h(
      'p',
      { class: 'muted' },
      'Install code ',
      h('code', { class: 'install-code__code' }, answer.install_code),
      ` · works once · valid until ${dateTime(answer.install_code_expires_at)}`,
    ),
  );
}
