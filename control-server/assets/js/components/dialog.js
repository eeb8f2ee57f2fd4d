// A confirmation asked in a real modal <dialog> (focus is trapped and
// Escape cancels), for actions that cannot be undone.

import { h } from '../dom.js';

/** Resolves true when the person confirms. */
export function confirmAction({ title, message, confirm, danger = false }) {
  return new Promise((resolve) => {
    const cancelButton = h('button', { type: 'button', class: 'button', value: 'cancel' }, 'Cancel');
    const confirmButton = h(
      'button',
      { type: 'button', class: `button ${danger ? 'button--danger' : 'button--primary'}`, value: 'confirm' },
      confirm,
    );
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'dialog-title' },
      h('h2', { id: 'dialog-title', class: 'dialog__title' }, title),
      h('p', { class: 'dialog__message' }, message),
      h('div', { class: 'dialog__actions' }, cancelButton, confirmButton),
    );
    let answer = false;
    cancelButton.addEventListener('click', () => dialog.close());
    confirmButton.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancelButton.focus();
  });
}
