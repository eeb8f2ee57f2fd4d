// One user: status and actions, credit gauge and today's use, their share
// of the subscription's windows, every limit with its current window, the
// usage chart, the limits editor with preview, sign-in (own login or a team
// subscription) and agent turns, their e-mail and single sign-on identity,
// alerts about their own usage, and the devices. Live messages about this
// user refresh it in place.

import { get } from '../api.js';
import { accessPanel, signInText } from '../components/access-panel.js';
import { statusBadge } from '../components/badge.js';
import { devicesTable } from '../components/devices.js';
import { creditGauge } from '../components/gauge.js';
import { hookCodePanel, installCodePanel } from '../components/install-code.js';
import { LimitsPanel } from '../components/limits-panel.js';
import { creditWindow, limitMeters, scheduleList, shareMeters } from '../components/limits.js';
import { identityPanel } from '../components/person-identity.js';
import { PersonAlerts } from '../components/person-alerts.js';
import { todayTable } from '../components/today-table.js';
import { UsagePanel } from '../components/usage-panel.js';
import { userActions } from '../components/user-actions.js';
import { h, pageReady, replace } from '../dom.js';
import { ago } from '../format.js';
import { describeRule } from '../rules.js';
import { canEdit } from '../session.js';
import { personSharesText } from '../utilization.js';

const REFRESH_DELAY_MS = 250;

/** `Of the team's subscription (estimates): 38 % of this 5-hour window, 12 % of the week.` */
function sharesLine(user) {
  const text = personSharesText(user.window_shares);
  if (!text) return null;
  const name = user.subscription?.name ?? 'their subscription';
  return h(
    'p',
    { class: 'person-shares', id: 'person-shares' },
    h('span', { class: 'muted' }, `Share of ${name} (estimated): `),
    h('strong', {}, text),
  );
}

function readOnlyLimits(user) {
  if (!user.limits.length) return h('p', { class: 'muted' }, 'No limits.');
  return h(
    'ul',
    { class: 'rule-list' },
    user.limits.map((rule) => h('li', {}, describeRule(rule))),
  );
}

export async function render(main, { live }) {
  const id = Number(location.pathname.split('/').pop());
  const usage = new UsagePanel(id);
  // The chart's data, the user and the team's choices are fetched side by side.
  const [answer, , { subscriptions }, { settings }] = await Promise.all([
    get(`/users/${id}`),
    usage.fetch(),
    get('/subscriptions'),
    get('/settings'),
  ]);
  let user = answer.user;
  document.title = `${user.name} · ${document.title}`;

  const head = h('div', { class: 'page-head' });
  const now = h('div', { class: 'user-now' });
  const codeHolder = h('div');
  const devices = h('section', { class: 'panel', 'aria-labelledby': 'devices-title' });

  const showCode = (answer) => {
    const panel = answer.kind === 'hook' ? hookCodePanel : installCodePanel;
    replace(codeHolder, panel(answer, user.name));
    codeHolder.firstElementChild.focus();
  };
  const reload = async () => show((await get(`/users/${id}`)).user);
  const show = (fresh) => {
    user = fresh;
    replace(
      head,
      h(
        'div',
        {},
        h('p', { class: 'breadcrumb' }, h('a', { href: '/dashboard' }, '← Overview')),
        h('h1', { class: 'user-title' }, user.name, ' ', statusBadge(user.status)),
        h(
          'p',
          { class: 'muted' },
          `${user.slug} · ${user.effective_time_zone} · ${signInText(user)} · last active ${ago(user.last_active_at)}`,
        ),
      ),
      canEdit() ? userActions(user, { onChange: show, onCode: showCode }) : null,
    );
    replace(
      now,
      h(
        'section',
        { class: 'panel user-now__credits', 'aria-labelledby': 'today-title' },
        h('h2', { id: 'today-title', class: 'panel__title' }, 'Credits and today'),
        creditGauge({
          balance: user.credit_balance,
          budget: user.credit_budget,
          windowText: creditWindow(user.report),
        }),
        todayTable(user.report),
      ),
      h(
        'section',
        { class: 'panel user-now__limits', 'aria-labelledby': 'windows-title' },
        h('h2', { id: 'windows-title', class: 'panel__title' }, 'Limits now'),
        sharesLine(user),
        limitMeters(user.report),
        shareMeters(user.report),
        scheduleList(user.report),
        user.report?.limits?.length || user.report?.schedules?.length || user.report?.shares?.length
          ? null
          : h('p', { class: 'muted' }, 'No limits: every model may be used without restriction.'),
      ),
    );
    replace(
      devices,
      h('h2', { id: 'devices-title', class: 'panel__title' }, 'Devices'),
      devicesTable(user.devices, canEdit() ? { onRevoked: reload } : {}),
    );
  };
  show(user);

  const limits = canEdit()
    ? new LimitsPanel(user, { onSaved: show }).element
    : h(
        'section',
        { class: 'panel', 'aria-labelledby': 'limits-title' },
        h('h2', { id: 'limits-title', class: 'panel__title' }, 'Limits'),
        readOnlyLimits(user),
      );

  const access = accessPanel(user, {
    subscriptions,
    teamAgentTurns: settings.agent_turns,
    onSaved: show,
  });
  const identity = identityPanel(user, { onSaved: show });
  const alerts = new PersonAlerts(user);
  await alerts.load();

  let timer = null;
  const refresh = ({ chart = false } = {}) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        show((await get(`/users/${id}`)).user);
        if (chart) await usage.load({ fresh: true });
      } catch (error) {
        if (error.status === 404) location.assign('/dashboard');
      }
    }, REFRESH_DELAY_MS);
  };
  live.on('*', (message) => {
    if (message.userId !== id) return;
    refresh({ chart: message.type === 'user_counted' || message.type === 'usage' });
  });
  live.on('resync', () => refresh({ chart: true }));
  live.on('shares_updated', () => refresh({ chart: false }));

  replace(main, head, codeHolder, now, usage.element, limits, access, identity, alerts.element, devices);
  usage.draw();
  pageReady();
}
