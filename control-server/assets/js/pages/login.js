// Login: the built-in admin (password only) or a named admin/viewer
// account. Success sets the HttpOnly session cookie and returns to the page
// the person wanted.

import { ApiError, post } from '../api.js';
import { brandMark } from '../components/brand.js';
import { h, pageReady, replace } from '../dom.js';

function nextPath() {
  const next = new URLSearchParams(location.search).get('next') ?? '';
  // Only pages of the dashboard itself: never another site.
  return /^\/dashboard(\/[\w\-./?=&%]*)?$/.test(next) && !next.includes('//') ? next : '/dashboard';
}

export async function render(main) {
  const username = h('input', {
    id: 'username',
    name: 'username',
    type: 'text',
    autocomplete: 'username',
    placeholder: 'admin',
    'aria-describedby': 'username-hint',
  });
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const problem = h('p', { id: 'login-problem', class: 'form__problem', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'button button--primary button--wide' }, 'Log in');
  const form = h(
    'form',
    { class: 'login__form', novalidate: true },
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'username' }, 'Username'),
      username,
      h('span', { class: 'field__hint', id: 'username-hint' }, 'Leave empty for the built-in admin.'),
    ),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    problem,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.hidden = true;
    if (!password.value) {
      problem.textContent = 'Enter the password.';
      problem.hidden = false;
      password.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      const body = { password: password.value };
      if (username.value.trim()) body.username = username.value.trim();
      await post('/login', body);
      location.assign(nextPath());
    } catch (error) {
      problem.textContent =
        error instanceof ApiError && error.status === 401 ? 'Wrong username or password.' : error.message;
      problem.hidden = false;
      password.select();
      password.focus();
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });
  replace(
    main,
    h(
      'section',
      { class: 'login' },
      h('p', { class: 'login__brand' }, brandMark(), ' ccgate'),
      h('h1', {}, 'Log in to the dashboard'),
      form,
    ),
  );
  main.classList.add('main--login');
  password.focus();
  pageReady();
}
