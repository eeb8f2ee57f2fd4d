// Overview: the subscriptions' utilization (one card each, with a history
// chart), every user as a card, and the live feed. Live messages refresh
// the card of the user or subscription they concern and add to the feed;
// nothing reloads the page.

import { get, query } from '../api.js';
import { Feed, fromAudit, fromEvent, fromLive } from '../components/feed.js';
import { SubscriptionUsage } from '../components/subscription-usage.js';
import { userCard } from '../components/user-card.js';
import { h, pageReady, replace } from '../dom.js';
import { canEdit } from '../session.js';

const REFRESH_DELAY_MS = 250;
const USER_EVENTS = [
  'user_counted',
  'usage',
  'user_blocked',
  'user_status_change',
  'user_updated',
  'user_status',
  'user_check',
  'device_registered',
  'user_created',
];

function counts(users) {
  const by = { active: 0, paused: 0, killed: 0 };
  for (const user of users.values()) by[user.status] = (by[user.status] ?? 0) + 1;
  return `${users.size} users · ${by.active} active · ${by.paused} paused · ${by.killed} killed`;
}

export async function render(main, { live }) {
  const users = new Map();
  const cards = h('div', { class: 'cards', id: 'user-cards' });
  const summary = h('p', { class: 'muted', id: 'user-counts' });
  const empty = h(
    'p',
    { class: 'panel muted' },
    'No users yet. ',
    canEdit() ? h('a', { href: '/dashboard/users/new' }, 'Add the first one.') : null,
  );
  const updateCounts = () => {
    summary.textContent = counts(users);
    empty.hidden = users.size > 0;
  };
  const search = h('input', {
    type: 'search',
    id: 'user-search',
    placeholder: 'Find a user',
    'aria-label': 'Find a user by name',
    autocomplete: 'off',
  });
  const subscriptions = new SubscriptionUsage();
  const feed = new Feed();

  const matches = (user) => !search.value || user.name.toLowerCase().includes(search.value.trim().toLowerCase());
  const showCard = (user) => {
    const card = userCard(user);
    card.hidden = !matches(user);
    const old = cards.querySelector(`[data-user-id="${user.id}"]`);
    if (old) old.replaceWith(card);
    else cards.append(card);
  };
  const showAll = () => {
    replace(cards, [...users.values()].map(userCard));
    for (const card of cards.children) card.hidden = !matches(users.get(Number(card.dataset.userId)));
    updateCounts();
  };
  search.addEventListener('input', () => {
    for (const card of cards.children) card.hidden = !matches(users.get(Number(card.dataset.userId)));
  });

  const pending = new Map();
  const refreshUser = (id) => {
    if (pending.has(id)) return;
    pending.set(
      id,
      setTimeout(async () => {
        pending.delete(id);
        try {
          const { user } = await get(`/users/${id}`);
          users.set(user.id, user);
          showCard(user);
          updateCounts();
        } catch (error) {
          if (error.status === 404) {
            users.delete(id);
            cards.querySelector(`[data-user-id="${id}"]`)?.remove();
            updateCounts();
          }
        }
      }, REFRESH_DELAY_MS),
    );
  };

  const loadAll = async () => {
    const [list] = await Promise.all([get('/users'), subscriptions.load()]);
    users.clear();
    for (const user of list.users) users.set(user.id, user);
    showAll();
  };

  for (const type of USER_EVENTS) live.on(type, (message) => message.userId && refreshUser(message.userId));
  live.on('user_deleted', (message) => {
    users.delete(message.userId);
    cards.querySelector(`[data-user-id="${message.userId}"]`)?.remove();
    updateCounts();
  });
  live.on('subscription', () => subscriptions.refreshSoon());
  live.on('subscription_changed', () => subscriptions.refreshSoon());
  live.on('unattributed_use', () => subscriptions.refreshSoon());
  live.on('shares_updated', () => subscriptions.refreshSoon());
  const subscriptionName = (id) => subscriptions.cards.get(id)?.data?.name ?? null;
  live.on('*', (message) => feed.add([fromLive(message, { subscriptionName })], { fresh: true }));
  live.on('resync', () => loadAll().catch(() => {}));

  const [, events, kills] = await Promise.all([
    loadAll(),
    get(`/events${query({ limit: 100 })}`),
    get(`/audit${query({ kind: 'user_killed', limit: 20 })}`),
  ]);
  feed.add([...events.events.map((e) => fromEvent(e, users)), ...kills.entries.map((e) => fromAudit(e, users))]);

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Overview'), summary),
      h(
        'div',
        { class: 'page-head__actions' },
        search,
        canEdit() ? h('a', { class: 'button button--primary', href: '/dashboard/users/new' }, '+ Add user') : null,
      ),
    ),
    subscriptions.element,
    h(
      'div',
      { class: 'overview' },
      h(
        'section',
        { class: 'overview__users', 'aria-labelledby': 'users-title' },
        h('h2', { id: 'users-title', class: 'visually-hidden' }, 'Users'),
        empty,
        cards,
      ),
      h(
        'div',
        { class: 'overview__aside' },
        h(
          'section',
          { class: 'panel overview__feed', 'aria-labelledby': 'feed-title' },
          h('h2', { id: 'feed-title', class: 'panel__title' }, 'Live events'),
          feed.element,
        ),
      ),
    ),
  );
  pageReady();
}
