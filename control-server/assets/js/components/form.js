// Small form helpers: a labelled field, and a submit handler that shows the
// API's message next to the form.

import { h, uid } from '../dom.js';
import { notify } from './notices.js';

/** A labelled control; `hint` is read with it by screen readers. */
export function field(label, control, hint) {
  const id = control.id || uid('field');
  control.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('span', { class: 'field__hint', id: hintId }, hint) : null,
  );
}

/**
 * A form whose submit runs `action()`; a thrown error shows in the form,
 * a result shows `success` (a text or a function of the result).
 */
export function actionForm({ id, children, submitLabel, action, success, disabled = false }) {
  const problem = h('p', { class: 'form__problem', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'button button--primary', disabled }, submitLabel);
  const form = h(
    'form',
    { class: 'form', id, novalidate: true },
    children,
    problem,
    disabled ? null : h('div', { class: 'form__actions' }, submit),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.hidden = true;
    submit.disabled = true;
    try {
      const result = await action();
      const text = typeof success === 'function' ? success(result) : success;
      if (text) notify(text, 'success');
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  if (disabled) for (const control of form.querySelectorAll('input, select, textarea')) control.disabled = true;
  return form;
}
