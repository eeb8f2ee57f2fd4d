// Who is logged in, as the server wrote it into the page: role (admin,
// viewer or member), name, team and the CSRF token that every change must
// carry.

const data = document.body.dataset;

export const session = Object.freeze({
  page: data.page,
  role: data.role ?? null,
  username: data.username ?? '',
  team: data.team ?? '',
  csrf: data.csrf ?? '',
});

/** A member (single sign-on) sees their own page only, `/dashboard/me`. */
export function isMember() {
  return session.role === 'member';
}

/** Admins may change things; viewers get the same pages without controls. */
export function canEdit() {
  return session.role === 'admin';
}

/** The login page, coming back to where the person was. */
export function loginUrl() {
  const here = location.pathname + location.search;
  return `/dashboard/login?next=${encodeURIComponent(here)}`;
}
