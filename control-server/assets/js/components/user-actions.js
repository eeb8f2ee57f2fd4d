// What an admin can do to a user: pause, resume, kill (after a
// confirmation), a new install code, a code for moving a claude-code-limiter
// machine, new device tokens, delete.

import { del, post, put } from '../api.js';
import { h } from '../dom.js';
import { confirmAction } from './dialog.js';
import { attempt, notify } from './notices.js';

function button(text, id, variant = '') {
  return h('button', { type: 'button', class: `button ${variant}`.trim(), id }, text);
}

/** `onChange(user)` after a status change; `onCode(answer)` with a new install or hook code. */
export function userActions(user, { onChange, onCode }) {
  const setStatus = async (status, success) => {
    const answer = await attempt(() => put(`/users/${user.id}`, { status }), success);
    if (answer) onChange(answer.user);
  };
  const actions = [];
  if (user.status === 'active') {
    const pause = button('❚❚ Pause', 'pause-user');
    pause.addEventListener('click', () => setStatus('paused', `${user.name} is paused: new prompts are refused.`));
    actions.push(pause);
  } else {
    const resume = button('▶ Resume', 'resume-user', 'button--primary');
    resume.addEventListener('click', () => setStatus('active', `${user.name} is active again.`));
    actions.push(resume);
  }
  if (user.status !== 'killed') {
    const kill = button('✕ Kill', 'kill-user', 'button--danger');
    kill.addEventListener('click', async () => {
      const sure = await confirmAction({
        title: `Kill ${user.name}’s access?`,
        message: `Every prompt of ${user.name} is refused at once, replies in progress are cut, each device logs ${user.name} out of Claude Code and gets a new device token. “Resume” gives access back.`,
        confirm: `Kill ${user.name}`,
        danger: true,
      });
      if (sure) await setStatus('killed', `${user.name} is killed.`);
    });
    actions.push(kill);
  }
  const code = button('New install code', 'new-install-code');
  code.addEventListener('click', async () => {
    const answer = await attempt(() => post(`/users/${user.id}/install-code`));
    if (answer) onCode(answer);
  });
  const hook = button('Migrate a claude-code-limiter machine', 'hook-code');
  hook.addEventListener('click', async () => {
    const sure = await confirmAction({
      title: `A hook code for ${user.name}?`,
      message: `The code registers a machine that still runs claude-code-limiter’s hook, which reports its own counts (its user can change them). Use it only to move such a machine; for a new machine use “New install code” and ccgate setup.`,
      confirm: 'Make a hook code',
    });
    if (!sure) return;
    const answer = await attempt(() => post(`/users/${user.id}/hook-code`));
    if (answer) onCode(answer);
  });
  const rotate = button('Rotate device tokens', 'rotate-tokens');
  rotate.addEventListener('click', async () => {
    const sure = await confirmAction({
      title: 'Give every device a new token?',
      message: `Each of ${user.name}’s ccgate devices receives a new token on its next sync, and the old one stops working once the new one is used. This is not a revocation: the new token goes to whoever holds the old one. To cut off a lost or stolen machine, revoke it in Devices.`,
      confirm: 'Rotate tokens',
    });
    if (!sure) return;
    const answer = await attempt(() => post(`/users/${user.id}/rotate-tokens`));
    if (answer)
      notify(`${answer.rotated} device${answer.rotated === 1 ? '' : 's'} will receive a new token.`, 'success');
  });
  const remove = button('Delete user', 'delete-user', 'button--quiet button--danger-text');
  remove.addEventListener('click', async () => {
    const sure = await confirmAction({
      title: `Delete ${user.name}?`,
      message: `${user.name}, their limits, devices and usage history are deleted. Their devices stop working. The audit log keeps what happened.`,
      confirm: 'Delete for good',
      danger: true,
    });
    if (sure && (await attempt(() => del(`/users/${user.id}`), `${user.name} was deleted.`))) {
      location.assign('/dashboard');
    }
  });
  actions.push(code, hook, rotate, remove);
  return h('div', { class: 'actions', role: 'group', 'aria-label': `Actions for ${user.name}` }, actions);
}
