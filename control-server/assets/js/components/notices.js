// Short messages after an action ("Limits saved", errors), read out by
// screen readers through the page's polite live region.

import { h } from '../dom.js';

const SHOWN_MS = 6000;

export function notify(message, kind = 'info') {
  const region = document.getElementById('notices');
  if (!region) return;
  const icon = kind === 'error' ? '✕' : kind === 'success' ? '✓' : 'ℹ';
  const close = h('button', { type: 'button', class: 'notice__close', 'aria-label': 'Dismiss' }, '×');
  const notice = h(
    'div',
    { class: `notice notice--${kind}` },
    h('span', { class: 'notice__icon', 'aria-hidden': 'true' }, icon),
    h('span', { class: 'notice__text' }, message),
    close,
  );
  close.addEventListener('click', () => notice.remove());
  region.append(notice);
  setTimeout(() => notice.remove(), kind === 'error' ? SHOWN_MS * 2 : SHOWN_MS);
}

/** Runs `action`, reporting success or the API's message; returns its result. */
export async function attempt(action, success) {
  try {
    const result = await action();
    if (success) notify(success, 'success');
    return result;
  } catch (error) {
    notify(error.message ?? String(error), 'error');
    return undefined;
  }
}
