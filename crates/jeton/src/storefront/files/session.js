// The customer's session: where it is kept and how a request proves it.
// Everything about authenticating as the customer lives in this module.
//
// Two modes, chosen by config.json's `session`:
//
// - `cookie` (the default when the page calls the API on the host it was
//   served from, as with `jeton serve --demo`): the login asks for a cookie
//   session. The user token is in the API's `jeton_session` cookie, which
//   is HttpOnly: this page's scripts never see it, so an injected script
//   cannot steal it. Requests send it with `credentials: 'include'`, and
//   those that change something copy the readable `jeton_csrf` cookie into
//   the `X-CSRF-Token` header. sessionStorage keeps only who is logged in.
// - `token` (an API on another site, where the browser would not send the
//   API's cookies): the user token is kept in sessionStorage, which lasts
//   as long as the tab; a script injected into this page could read it.
//
// See docs/storefront.md.

import { request, sessionMode } from './api.js';

const STORAGE_KEY = 'jeton.session';
const CSRF_COOKIE = 'jeton_csrf';
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function cookieMode() {
  return sessionMode() === 'cookie';
}

/** The readable CSRF cookie the API set at login, or null. */
function csrfToken() {
  for (const pair of document.cookie.split(';')) {
    const [name, ...value] = pair.trim().split('=');
    if (name === CSRF_COOKIE && value.length) return value.join('=');
  }
  return null;
}

/**
 * The session, or null: `{token_id, expires_at, customer}`, and in token
 * mode the `token` itself.
 */
export function current() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
  } catch {
    session = null;
  }
  if (session && session.expires_at && Date.parse(session.expires_at) <= Date.now()) {
    forget();
    return null;
  }
  // The API clears the cookies when the session ends (logout, a refused
  // cookie): without its CSRF cookie the session is gone.
  if (session && cookieMode() && csrfToken() === null) {
    forget();
    return null;
  }
  return session;
}

export function loggedIn() {
  return current() !== null;
}

/** The customer's name and email, if logged in. */
export function customer() {
  return current()?.customer ?? null;
}

/** The id of this session's token (to mark "this device"). */
export function tokenId() {
  return current()?.token_id ?? null;
}

/** Adds the customer's credentials to a fetch `init`. */
export function authorize(init) {
  if (cookieMode()) {
    init.credentials = 'include';
    const csrf = csrfToken();
    if (UNSAFE.has(init.method) && csrf) init.headers['X-CSRF-Token'] = csrf;
    return init;
  }
  const session = current();
  if (session) init.headers.Authorization = `Bearer ${session.token}`;
  return init;
}

/**
 * Logs in with the publishable key; the session is kept on success. A
 * `guestToken` asks the API to merge that guest's cart into the customer's.
 */
export async function logIn(email, password, deviceName, guestToken = null) {
  const cookies = cookieMode();
  const body = { email, password, device_name: deviceName };
  if (guestToken) body.guest_token = guestToken;
  if (cookies) body.session = 'cookie';
  // In cookie mode the answer sets the cookies: the browser keeps them
  // only for a request made with credentials.
  const login = await request('/auth/login', { method: 'POST', body, credentials: cookies });
  const session = {
    token_id: login.token_id,
    expires_at: login.expires_at,
    customer: login.customer ?? null,
  };
  if (!cookies) session.token = login.token;
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  if (session.customer) return;
  try {
    session.customer = await request('/me', { as: 'user' });
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  } catch {
    // The name is a nicety: the session works without it.
  }
}

/** Ends this session at the API (best effort), then forgets it here. */
export async function logOut() {
  try {
    if (loggedIn()) await request('/auth/logout', { method: 'POST', as: 'user' });
  } finally {
    forget();
  }
}

/** Forgets the session here (the API already ended it, or will). */
export function forget() {
  sessionStorage.removeItem(STORAGE_KEY);
}
