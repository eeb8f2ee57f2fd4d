// Entry point of every page: the top bar, the live connection, then the
// page's own module (js/pages/<page>.js, named by the server in the body).
// A member is sent to their own page from any other (the server does so
// too); their page has no live connection (`/ws` is for admins and viewers).

import { renderTopbar } from './components/topbar.js';
import { h, pageReady, replace } from './dom.js';
import { live } from './live.js';
import { ME_PAGE } from './api.js';
import { isMember, session } from './session.js';

// A Content-Security-Policy violation is a bug of ours: say so, and count it
// where the browser tests look.
document.addEventListener('securitypolicyviolation', (event) => {
  console.error('CSP violation', event.violatedDirective, event.blockedURI);
  const seen = Number(document.body.dataset.cspViolations ?? 0);
  document.body.dataset.cspViolations = String(seen + 1);
});

async function start() {
  const main = document.getElementById('main');
  if (isMember() && session.page !== 'me' && session.page !== 'login') {
    location.replace(ME_PAGE);
    return;
  }
  if (session.page !== 'login') {
    renderTopbar(document.getElementById('topbar'), live);
    if (!isMember()) live.start();
  }
  try {
    const page = await import(`./pages/${session.page}.js`);
    await page.render(main, { live });
  } catch (error) {
    console.error(error);
    replace(
      main,
      h(
        'div',
        { class: 'panel panel--error', role: 'alert' },
        h('h1', {}, 'This page could not be shown'),
        h('p', {}, error?.message ?? String(error)),
        h('p', {}, h('a', { href: location.pathname }, 'Try again')),
      ),
    );
    pageReady();
  }
}

start();
