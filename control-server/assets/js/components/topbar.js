// The top bar of every page but the login: team, navigation, whether live
// updates arrive, who is logged in, and logging out. A member gets no
// navigation (their own page is all they see): their name and Sign out.

import { post } from '../api.js';
import { h } from '../dom.js';
import { brandMark } from './brand.js';
import { canEdit, isMember, session } from '../session.js';
import { notify } from './notices.js';

const LINKS = [
  ['overview', '/dashboard', 'Overview', false],
  ['add-user', '/dashboard/users/new', 'Add user', true],
  ['activity', '/dashboard/activity', 'Activity', false],
  ['settings', '/dashboard/settings', 'Settings', false],
];

function liveIndicator(live) {
  const text = h('span', { class: 'live__text' }, 'Connecting…');
  const indicator = h(
    'span',
    { id: 'live-status', class: 'live', dataset: { state: 'connecting' }, role: 'status' },
    h('span', { class: 'live__icon', 'aria-hidden': 'true' }),
    text,
  );
  let ticker = null;
  live.on('state', ({ state, retryAt }) => {
    indicator.dataset.state = state;
    clearInterval(ticker);
    if (state === 'live') text.textContent = 'Live';
    else if (state === 'connecting') text.textContent = 'Connecting…';
    else {
      const show = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        text.textContent = `Offline · retrying in ${seconds} s`;
      };
      show();
      ticker = setInterval(show, 1000);
    }
  });
  return indicator;
}

export function renderTopbar(container, live) {
  const current = session.page === 'user' ? 'overview' : session.page;
  const member = isMember();
  const logout = h(
    'button',
    { type: 'button', class: 'button button--quiet', id: 'logout' },
    member ? 'Sign out' : 'Log out',
  );
  logout.addEventListener('click', async () => {
    try {
      await post('/logout');
      location.assign('/dashboard/login');
    } catch (error) {
      notify(error.message, 'error');
    }
  });
  const links = LINKS.filter(([, , , adminOnly]) => !adminOnly || canEdit()).map(([page, href, label]) =>
    h('li', {}, h('a', { href, 'aria-current': page === current ? 'page' : undefined }, label)),
  );
  const parts = [
    h(
      'a',
      { class: 'brand', href: member ? '/dashboard/me' : '/dashboard' },
      brandMark(),
      h('span', { class: 'brand__name' }, 'ccgate'),
      h('span', { class: 'brand__team' }, session.team),
    ),
    member ? null : h('nav', { class: 'nav', 'aria-label': 'Main' }, h('ul', {}, links)),
    h(
      'div',
      { class: 'whoami' },
      member ? null : liveIndicator(live),
      h(
        'span',
        { class: 'whoami__name' },
        h('span', { id: 'whoami-name' }, session.username),
        canEdit() || member
          ? null
          : h('span', { class: 'tag', title: 'Viewers can look but not change anything' }, 'read-only'),
      ),
      logout,
    ),
  ];
  container.replaceChildren(...parts.filter(Boolean));
}
