// A user's devices: host, OS, Claude Code and ccgate versions, when last
// seen, and whether online now.

import { h } from '../dom.js';
import { ago, dateTime } from '../format.js';
import { onlineBadge } from './badge.js';

function os(device) {
  return [device.os, device.os_version, device.arch].filter(Boolean).join(' ') || '—';
}

export function devicesTable(devices) {
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
          ['Host', 'OS', 'Claude Code', 'Agent', 'Last seen', 'Status'].map((title) =>
            h('th', { scope: 'col' }, title),
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
              device.hostname ?? `device ${device.id}`,
              device.os_user ? h('span', { class: 'muted' }, ` (${device.os_user})`) : null,
            ),
            h('td', {}, os(device)),
            h('td', {}, device.claude_version ?? '—'),
            h('td', {}, device.kind === 'hook' ? 'hook client' : (device.agent_version ?? '—')),
            h('td', { title: dateTime(device.last_seen_at) }, ago(device.last_seen_at)),
            h(
              'td',
              {},
              onlineBadge(device.online),
              device.token_rotation_pending ? h('span', { class: 'tag' }, 'new token pending') : null,
            ),
          ),
        ),
      ),
    ),
  );
}
