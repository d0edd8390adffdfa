// The customer's session: where it is kept and how a request proves it.
// Everything about authenticating as the customer lives in this module, so
// that switching to another kind of session changes this file only.
//
// Bearer mode: the user token is kept in sessionStorage, which lasts as long
// as the tab and is never sent anywhere by the browser on its own. A script
// injected into this page could read it; see docs/storefront.md.

import { request } from './api.js';

const STORAGE_KEY = 'jeton.session';

/** The session, or null: `{token, token_id, expires_at, customer}`. */
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
  const session = current();
  if (session) init.headers.Authorization = `Bearer ${session.token}`;
  return init;
}

/** Logs in with the publishable key; the session is kept on success. */
export async function logIn(email, password, deviceName) {
  const login = await request('/auth/login', {
    method: 'POST',
    body: { email, password, device_name: deviceName },
  });
  const session = {
    token: login.token,
    token_id: login.token_id,
    expires_at: login.expires_at,
    customer: null,
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
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
