// A person's own page (`GET /api/me`), what a member signed in with single
// sign-on sees and all they see: their use against each limit with when it
// resets, credits and today's use, their share of the subscription's
// windows, the prompts ccgate refused them with the message they got, their
// alerts (up to three thresholds, the only thing they change here, and the
// alerts that fired) and their devices. It fetches again every half
// minute (`/ws` is for admins and viewers).

import { ApiError, send } from '../api.js';
import { severityBadge } from '../components/alert-log.js';
import { statusBadge } from '../components/badge.js';
import { devicesTable } from '../components/devices.js';
import { actionForm } from '../components/form.js';
import { creditGauge } from '../components/gauge.js';
import { creditWindow, limitMeters, scheduleList, shareMeters } from '../components/limits.js';
import { todayTable } from '../components/today-table.js';
import { shareBar } from '../components/window-shares.js';
import { h, pageReady, replace } from '../dom.js';
import { ago, countdown, dateTime } from '../format.js';
import { reasonLabel } from '../rules.js';
import { basisPointsText } from '../utilization.js';

const ME = '/api/me';
const REFRESH_MS = 30_000;
/** How many thresholds a person may keep. */
const MAX_THRESHOLDS = 3;

const NOT_LINKED =
  'Your sign-in is not linked to a person of the team yet. Ask an admin to link it, then reload this page.';

const STATUS_TEXT = {
  paused: 'An admin has paused your access: ccgate refuses new prompts until it is resumed.',
  killed: 'An admin has stopped your access: ccgate refuses every prompt until it is resumed.',
};

const WINDOW_WORDS = { five_hour: 'the 5-hour window', seven_day: 'the weekly window' };
const WINDOW_ORDER = ['five_hour', 'seven_day'];

function panel(id, title, ...children) {
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': `${id}-title`, id },
    h('h2', { id: `${id}-title`, class: 'panel__title' }, title),
    children,
  );
}

function notLinked(message) {
  return h(
    'section',
    { class: 'panel me-unlinked', id: 'not-linked', role: 'alert' },
    h('h1', {}, 'Not linked yet'),
    h('p', { class: 'me-unlinked__text' }, message || NOT_LINKED),
  );
}

function head(user) {
  return h(
    'div',
    { class: 'page-head' },
    h(
      'div',
      {},
      h('h1', { class: 'user-title', id: 'me-name' }, user.name, ' ', statusBadge(user.status)),
      h(
        'p',
        { class: 'muted' },
        `Your use of ${user.subscription ? user.subscription.name : 'Claude Code'} · ${user.effective_time_zone} · last active ${ago(user.last_active_at)}`,
      ),
      STATUS_TEXT[user.status] ? h('p', { class: 'me-status', role: 'status' }, STATUS_TEXT[user.status]) : null,
    ),
  );
}

/** Credits and today's use, and every limit with its use and reset. */
function now(user) {
  const report = user.report;
  const none = !(report?.limits?.length || report?.schedules?.length || report?.shares?.length);
  return h(
    'div',
    { class: 'user-now' },
    h(
      'section',
      { class: 'panel user-now__credits', 'aria-labelledby': 'me-today-title' },
      h('h2', { id: 'me-today-title', class: 'panel__title' }, 'Credits and today'),
      creditGauge({ balance: user.credit_balance, budget: user.credit_budget, windowText: creditWindow(report) }),
      todayTable(report),
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'me-limits-title', id: 'me-limits' },
      h('h2', { id: 'me-limits-title', class: 'panel__title' }, 'My limits now'),
      limitMeters(report),
      shareMeters(report),
      scheduleList(report),
      none ? h('p', { class: 'muted' }, 'No limits: you may use every model without restriction.') : null,
    ),
  );
}

/** Their estimated part of the subscription's 5-hour and weekly windows. */
function shares(user) {
  const known = [...(user.window_shares ?? [])]
    .filter((share) => WINDOW_ORDER.includes(share.window))
    .sort((a, b) => WINDOW_ORDER.indexOf(a.window) - WINDOW_ORDER.indexOf(b.window));
  const name = user.subscription?.name ?? 'the team’s subscription';
  let body;
  if (known.length) {
    body = [
      h(
        'ul',
        { class: 'shares__list', id: 'me-shares' },
        known.map((share) => {
          const amount = `${basisPointsText(share.used_bp)} of ${WINDOW_WORDS[share.window]}`;
          const reset = share.resets_at ? `resets ${countdown(share.resets_at)}` : '';
          return h(
            'li',
            { class: 'share', dataset: { window: share.window } },
            h(
              'span',
              { class: 'share__text' },
              `You: ${amount}`,
              reset ? h('span', { class: 'muted' }, ` · ${reset}`) : null,
            ),
            shareBar(share.used_bp / 10_000, `Your share of ${WINDOW_WORDS[share.window]}`, amount),
          );
        }),
      ),
      h(
        'p',
        { class: 'shares__note muted' },
        `Estimates: each rise of ${name}’s windows is shared among the requests that caused it, weighted by model and tokens.`,
      ),
    ];
  } else if (user.subscription) {
    body = h('p', { class: 'muted', id: 'me-shares' }, `No estimate yet of your part of ${name}’s windows.`);
  } else {
    body = h('p', { class: 'muted', id: 'me-shares' }, 'You use your own Claude login, not a shared subscription.');
  }
  return panel('me-share', user.subscription ? `My share of ${name}` : 'Shared subscription', body);
}

/** The prompts ccgate refused, newest first, each with the message shown then. */
function blocks(list) {
  return panel(
    'me-blocks',
    'Recent blocks',
    list?.length
      ? h(
          'ol',
          { class: 'block-list', id: 'me-block-list' },
          list.map((block) =>
            h(
              'li',
              { class: 'block-item' },
              h(
                'p',
                { class: 'block-item__head' },
                h(
                  'time',
                  { datetime: block.at, title: dateTime(block.at) },
                  `${dateTime(block.at)} · ${ago(block.at)}`,
                ),
                block.model ? h('code', { class: 'block-item__model' }, block.model) : null,
                h('strong', { class: 'block-item__reason' }, reasonLabel(block.reason)),
              ),
              h('pre', { class: 'block-message__text' }, block.message),
            ),
          ),
        )
      : h('p', { class: 'muted', id: 'me-block-list' }, 'Nothing was blocked lately.'),
  );
}

function recentAlerts(list) {
  return list?.length
    ? h(
        'ol',
        { class: 'alert-list', id: 'me-alert-list' },
        list.map((alert) =>
          h(
            'li',
            { class: `alert-item alert-item--${alert.severity}` },
            h(
              'div',
              { class: 'alert-item__head' },
              severityBadge(alert.severity),
              h('strong', {}, alert.title),
              h('time', { datetime: alert.at, class: 'muted', title: dateTime(alert.at) }, ago(alert.at)),
            ),
            alert.message ? h('p', { class: 'alert-item__message' }, alert.message) : null,
          ),
        ),
      )
    : h('p', { class: 'muted', id: 'me-alert-list' }, 'No alert yet.');
}

/** Up to three percents, each 1–100, for `PUT /api/me/alerts`; throws with the reason. */
export function thresholdsOf(texts) {
  const values = [];
  for (const text of texts.map((t) => t.trim()).filter(Boolean)) {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > 100) {
      throw new Error(`${text} is not a percent from 1 to 100.`);
    }
    if (!values.includes(value)) values.push(value);
  }
  return values.sort((a, b) => a - b);
}

class MyAlerts {
  constructor(alerts, { onSaved }) {
    this.inputs = Array.from({ length: MAX_THRESHOLDS }, (_, index) =>
      h('input', {
        id: `alert-threshold-${index + 1}`,
        type: 'number',
        min: 1,
        max: 100,
        step: 1,
        inputmode: 'numeric',
        class: 'threshold__input',
        'aria-label': `Threshold ${index + 1} (percent of a limit)`,
      }),
    );
    this.recent = h('div', { class: 'me-alerts__recent' });
    this.fill(alerts);
    const form = actionForm({
      id: 'me-alerts-form',
      submitLabel: 'Save my alerts',
      success: 'Your alerts are saved.',
      children: [
        h(
          'fieldset',
          { class: 'thresholds' },
          h('legend', {}, 'Tell me when I reach … % of one of my limits'),
          h(
            'div',
            { class: 'thresholds__row' },
            this.inputs.map((input) =>
              h('span', { class: 'threshold' }, input, h('span', { 'aria-hidden': 'true' }, '%')),
            ),
          ),
          h(
            'p',
            { class: 'field__hint' },
            `Up to ${MAX_THRESHOLDS} percents from 1 to 100; leave a box empty for fewer. Your tightest limit counts.`,
          ),
        ),
      ],
      action: async () => {
        const thresholds = thresholdsOf(this.inputs.map((input) => input.value));
        const answer = await send('PUT', `${ME}/alerts`, { thresholds });
        this.fill(answer.alerts ?? answer);
        onSaved?.();
      },
    });
    this.element = panel(
      'me-alerts',
      'My alerts',
      form,
      h('h3', { class: 'panel__subtitle' }, 'Recent alerts'),
      this.recent,
    );
  }

  /** Shows the stored thresholds (and the recent alerts, if given). */
  fill(alerts) {
    const thresholds = alerts?.thresholds ?? [];
    this.inputs.forEach((input, index) => {
      input.value = thresholds[index] === undefined ? '' : String(thresholds[index]);
    });
    if (alerts?.recent) this.showRecent(alerts.recent);
  }

  showRecent(list) {
    replace(this.recent, recentAlerts(list));
  }
}

function devices(user) {
  return panel(
    'me-devices',
    'My devices',
    user.devices?.length
      ? devicesTable(user.devices)
      : h('p', { class: 'muted' }, 'No device yet. An admin gives you an install code to set up ccgate on your machine.'),
  );
}

async function load() {
  return send('GET', ME);
}

export async function render(main) {
  let answer;
  try {
    answer = await load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.code === 'not_linked') {
      replace(main, notLinked(error.message));
      pageReady();
      return;
    }
    throw error;
  }
  document.title = `${answer.user.name} · ${document.title}`;
  const name = document.getElementById('whoami-name');
  if (name) name.textContent = answer.user.name;

  const usage = h('div', { id: 'me-usage' });
  const machines = h('div');
  const show = (fresh) => {
    replace(usage, head(fresh.user), now(fresh.user), shares(fresh.user), blocks(fresh.blocks));
    replace(machines, devices(fresh.user));
  };
  const refresh = async () => {
    try {
      const fresh = await load();
      show(fresh);
      alerts.showRecent(fresh.alerts?.recent ?? []);
    } catch (error) {
      console.warn('could not refresh', error);
    }
  };
  const alerts = new MyAlerts(answer.alerts, { onSaved: refresh });
  show(answer);
  replace(main, usage, alerts.element, machines);
  main.classList.add('main--me');
  setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, REFRESH_MS);
  pageReady();
}
