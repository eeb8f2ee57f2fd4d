// A user's status as a badge: icon, word and colour together, so no one
// has to tell colours apart.

import { h } from '../dom.js';
import { capitalize } from '../format.js';

const ICONS = { active: '●', paused: '❚❚', killed: '✕' };

export function statusBadge(status) {
  return h(
    'span',
    { class: `badge badge--${status}`, dataset: { status } },
    h('span', { class: 'badge__icon', 'aria-hidden': 'true' }, ICONS[status] ?? '?'),
    h('span', { class: 'badge__text' }, capitalize(status)),
  );
}

/** Online/offline for a device, with a shape as well as a colour. */
export function onlineBadge(online) {
  return h(
    'span',
    { class: `presence presence--${online ? 'online' : 'offline'}` },
    h('span', { class: 'presence__icon', 'aria-hidden': 'true' }, online ? '●' : '○'),
    online ? 'online' : 'offline',
  );
}
