// The admin API (`/api/admin/*`) and a member's own (`/api/me`) over fetch:
// JSON in and out, the session cookie sent automatically, `X-CSRF-Token` on
// every change. A lost session sends the browser to the login page, a
// member refused an admin page to their own page.

import { loginUrl, session } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The member's own page, where a member refused an admin route belongs. */
export const ME_PAGE = '/dashboard/me';

/** `{error, code}` (the API's shape) or `{error: {code, message}}`. */
function problemOf(data) {
  const error = data?.error;
  if (error && typeof error === 'object') return { code: error.code, message: error.message };
  return { code: data?.code, message: error };
}

/** A request to any same-origin API path (`/api/admin/…`, `/api/me`). */
export async function send(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check the connection and try again.');
  }
  const data = await response.json().catch(() => null);
  if (response.status === 401 && session.role) {
    location.assign(loginUrl());
    throw new ApiError(401, 'unauthorized', 'Your session has ended. Log in again.');
  }
  const problem = problemOf(data);
  if (response.status === 403 && problem.code === 'member' && location.pathname !== ME_PAGE) {
    location.replace(ME_PAGE);
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      problem.code ?? 'error',
      problem.message ?? `The server answered ${response.status}.`,
    );
  }
  return data;
}

/** A request to the admin API: `path` is under `/api/admin`. */
export const request = (method, path, body) => send(method, `/api/admin${path}`, body);

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
