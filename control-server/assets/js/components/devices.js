// A user's devices: host, OS, Claude Code and ccgate versions (and whether
// the machine is behind the release the server serves), when last seen,
// whether online now, and (for admins) revoking one device.

import { del } from '../api.js';
import { h } from '../dom.js';
import { ago, dateTime } from '../format.js';
import { onlineBadge } from './badge.js';
import { confirmAction } from './dialog.js';
import { attempt } from './notices.js';

const hostName = (device) => device.hostname ?? `device ${device.id}`;

/** A button that revokes `device` after a confirmation, then calls `onRevoked()`. */
function revokeButton(device, onRevoked) {
  const host = hostName(device);
  const button = h(
    'button',
    {
      type: 'button',
      class: 'button button--quiet button--danger-text',
      dataset: { revokeDevice: String(device.id) },
      'aria-label': `Revoke ${host}`,
    },
    '✕ Revoke',
  );
  button.addEventListener('click', async () => {
    const sure = await confirmAction({
      title: `Revoke ${host}?`,
      message: `${host} stops being accepted at once: its ccgate refuses every prompt and says this server no longer accepts the machine. Its usage history stays. To use it again, run sudo ccgate setup there with a new install code. (Rotating tokens is not the same: a rotated token goes to whoever holds the old one.)`,
      confirm: `Revoke ${host}`,
      danger: true,
    });
    if (!sure) return;
    const answer = await attempt(() => del(`/devices/${device.id}`), `${host} was revoked.`);
    if (answer) onRevoked?.();
  });
  return button;
}

/** What the update state (`device.update`) says next to the version. */
const UPDATE_TAGS = {
  behind: ['update pending', 'The server serves a newer ccgate build than this machine runs.'],
  unknown: ['build unknown', 'This machine did not say which ccgate build it runs.'],
};

function agentCell(device) {
  const tag = UPDATE_TAGS[device.update];
  return [
    device.agent_version ?? '—',
    tag ? h('span', { class: 'tag', title: tag[1], dataset: { update: device.update } }, tag[0]) : null,
  ];
}

function os(device) {
  return [device.os, device.os_version, device.arch].filter(Boolean).join(' ') || '—';
}

/** `onRevoked` set (admins only): each device gets a revoke button. */
export function devicesTable(devices, { onRevoked } = {}) {
  if (!devices?.length) {
    return h(
      'p',
      { class: 'muted' },
      'No device yet. Run the setup command with an install code on the person’s machine.',
    );
  }
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table', id: 'devices' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          [...['Host', 'OS', 'Claude Code', 'Agent', 'Last seen', 'Status'], ...(onRevoked ? ['Actions'] : [])].map(
            (title) => h('th', { scope: 'col' }, title),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        devices.map((device) =>
          h(
            'tr',
            {},
            h(
              'th',
              { scope: 'row' },
              hostName(device),
              device.os_user ? h('span', { class: 'muted' }, ` (${device.os_user})`) : null,
            ),
            h('td', {}, os(device)),
            h('td', {}, device.claude_version ?? '—'),
            h('td', {}, device.kind === 'hook' ? 'hook client' : agentCell(device)),
            h('td', { title: dateTime(device.last_seen_at) }, ago(device.last_seen_at)),
            h(
              'td',
              {},
              onlineBadge(device.online),
              device.token_rotation_pending ? h('span', { class: 'tag' }, 'new token pending') : null,
            ),
            onRevoked ? h('td', {}, revokeButton(device, onRevoked)) : null,
          ),
        ),
      ),
    ),
  );
}
