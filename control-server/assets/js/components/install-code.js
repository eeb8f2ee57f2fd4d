// An install code with its ready-to-paste setup command (or, for a hook
// code, the call that registers a claude-code-limiter machine), and the
// server's warning when that would cross the network in plain http.

import { h } from '../dom.js';
import { dateTime } from '../format.js';
import { copyField } from './copy.js';

/** Why the command is unsafe (plain http to another machine), in words. */
function plainHttpWarning(answer) {
  if (!answer.setup_warning) return null;
  return h(
    'div',
    { class: 'install-code__warning', id: 'setup-warning', role: 'note' },
    h('p', {}, h('strong', {}, '⚠ Not safe: plain http. '), answer.setup_warning),
    h(
      'p',
      {},
      'That is why the command ends in --insecure: without it, setup and the ccgate daemon refuse a plain-http server on another machine.',
    ),
  );
}

function codeLine(answer) {
  return h(
    'p',
    { class: 'muted' },
    'Install code ',
    h('code', { class: 'install-code__code' }, answer.install_code),
    ` · works once · valid until ${dateTime(answer.install_code_expires_at)}`,
  );
}

/** `answer` is the API's `{install_code, install_code_expires_at, setup_command, setup_warning}`. */
export function installCodePanel(answer, name) {
  return h(
    'section',
    { class: 'panel install-code', id: 'install-code', 'aria-labelledby': 'install-code-title', tabindex: '-1' },
    h('h2', { id: 'install-code-title', class: 'panel__title' }, `Install ccgate on ${name}’s machine`),
    h('p', {}, 'Run this once on that machine (macOS or Linux, with ccgate installed):'),
    copyField(answer.setup_command, { label: 'Setup command', multiline: true }),
    plainHttpWarning(answer),
    codeLine(answer),
  );
}

/** `answer` is the API's hook code: `{install_code, register_command, server_url, …}`. */
export function hookCodePanel(answer, name) {
  return h(
    'section',
    { class: 'panel install-code', id: 'install-code', 'aria-labelledby': 'install-code-title', tabindex: '-1' },
    h('h2', { id: 'install-code-title', class: 'panel__title' }, `Move ${name}’s claude-code-limiter machine to ccgate`),
    h('p', {}, 'On the machine that still runs claude-code-limiter’s hook, register it with this server:'),
    copyField(answer.register_command, { label: 'Register command', multiline: true }),
    h(
      'p',
      {},
      `Then put the server URL (${answer.server_url}) and the auth_token of the answer in the hook’s server.json.`,
    ),
    h(
      'p',
      { class: 'muted' },
      'A hook machine reports its own counts, so it is only as strict as its user lets it be. Replace the hook with ccgate (a new install code and sudo ccgate setup) as soon as you can. This code works only for the hook; ccgate setup refuses it.',
    ),
    plainHttpWarning(answer),
    codeLine(answer),
  );
}
