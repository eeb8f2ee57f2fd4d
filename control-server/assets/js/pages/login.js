// Login: single sign-on when the server has it (a link to the provider
// that comes back to the page the person wanted), and the password form,
// always there for the built-in admin (break-glass) and for named
// admin/viewer accounts unless passwords are for the built-in admin only.
// Success sets the HttpOnly session cookie and returns to the page the
// person wanted.

import { ApiError, get, post } from '../api.js';
import { brandMark } from '../components/brand.js';
import { h, pageReady, replace } from '../dom.js';

/** The page asked for (`?next=`), if it is a page of the dashboard itself. */
function askedFor() {
  const next = new URLSearchParams(location.search).get('next') ?? '';
  // Only pages of the dashboard itself: never another site.
  return /^\/dashboard(\/[\w\-./?=&%]*)?$/.test(next) && !next.includes('//') ? next : null;
}

function nextPath() {
  return askedFor() ?? '/dashboard';
}

/** How people may sign in (`GET /api/admin/login`); none of it without an answer. */
async function loginOptions() {
  try {
    return await get('/login');
  } catch {
    return {};
  }
}

/** The provider's sign-in, coming back to the page asked for (else the server picks). */
function ssoLink(sso) {
  const url = new URL(sso.login_url || '/auth/oidc/login', location.origin);
  const next = askedFor();
  if (next) url.searchParams.set('return_to', next);
  return h(
    'div',
    { class: 'login__sso' },
    h(
      'a',
      { class: 'button button--primary button--wide', id: 'sso-login', href: url.pathname + url.search },
      'Sign in with single sign-on',
    ),
    h('p', { class: 'login__or muted' }, h('span', {}, 'or with a password')),
  );
}

export async function render(main) {
  const options = await loginOptions();
  const sso = options.sso?.enabled ? options.sso : null;
  const builtinOnly = options.password_login === 'builtin_admin_only';
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
  const submit = h(
    'button',
    { type: 'submit', class: `button ${sso ? '' : 'button--primary '}button--wide` },
    'Log in',
  );
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
    builtinOnly
      ? h(
          'p',
          { class: 'field__hint login__note', id: 'password-login-note' },
          'Password sign-in is for the built-in admin only.',
        )
      : null,
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
      sso ? ssoLink(sso) : null,
      form,
    ),
  );
  main.classList.add('main--login');
  if (sso) document.getElementById('sso-login').focus();
  else password.focus();
  pageReady();
}
