// Calls to the Jeton API. Guests' requests carry the shop's publishable key,
// or for their cart their guest token (cart.js); a customer's carry their
// session (see session.js). Every failure becomes an ApiError whose message
// a shopper can read.

import * as session from './session.js';

let config = null;

/** Reads /config.json: the API's URL and the publishable key. */
export async function loadConfig() {
  const response = await fetch('/config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json: ${response.status}`);
  config = await response.json();
  return config;
}

export function apiUrl() {
  return config.api_url;
}

/** How the customer's session is kept: 'cookie' or 'token' (session.js). */
export function sessionMode() {
  return config?.session === 'cookie' ? 'cookie' : 'token';
}

/**
 * kind: 'unreachable' (no answer the page may read), 'rate_limited',
 * 'session_ended' (the customer's token no longer works), 'guest_ended'
 * (the guest token no longer works: its cart is gone), 'key_refused'
 * (the shop's key no longer works), or 'problem' (any other refusal:
 * `status`, `code`, `detail`, `errors` as the API sent them).
 */
export class ApiError extends Error {
  constructor(kind, message, details = {}) {
    super(message);
    this.name = 'ApiError';
    this.kind = kind;
    Object.assign(this, details);
  }
}

/**
 * One API call. `as`: 'client' (the publishable key), 'guest' (the guest
 * token given as `token`) or 'user' (the customer's session). `credentials`: let the browser send and keep the
 * API's cookies on a client call (the cookie login). Resolves to the JSON
 * body (null for 204).
 */
export async function request(
  path,
  { method = 'GET', body, as = 'client', token, headers = {}, credentials = false } = {},
) {
  const init = { method, headers: { ...headers }, cache: 'no-store' };
  if (credentials) init.credentials = 'include';
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (as === 'user') {
    session.authorize(init);
  } else if (as === 'guest') {
    init.headers.Authorization = `Bearer ${token}`;
  } else {
    init.headers.Authorization = `Bearer ${config.publishable_key}`;
  }
  let response;
  try {
    response = await fetch(`${config.api_url}/api/v1${path}`, init);
  } catch {
    throw await unreachable();
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  throw refusal(response, data, as);
}

function refusal(response, problem, as) {
  const status = response.status;
  const code = problem?.code ?? null;
  const details = {
    status,
    code,
    detail: problem?.detail ?? '',
    errors: problem?.errors ?? [],
  };
  if (status === 429) {
    const seconds = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
    const wait = Number.isFinite(seconds) ? seconds : 60;
    return new ApiError('rate_limited', `Too many requests: try again in ${wait} s.`, {
      ...details,
      retryAfter: wait,
    });
  }
  if (status === 401 && as === 'user') {
    session.forget();
    return new ApiError(
      'session_ended',
      'Your session has ended. Please log in again: your cart is kept.',
      details,
    );
  }
  if (status === 401 && as === 'guest') {
    return new ApiError('guest_ended', 'Your cart has expired: it is empty now.', details);
  }
  if (status === 401 || code === 'origin_not_allowed') {
    console.error(
      `Jeton storefront: the API refused the publishable key (${status} ${code}). ` +
        'It was rotated or revoked, or this origin is not among its allowed origins: ' +
        'update config.json with a live key (restarting `jeton serve --demo` issues one).',
    );
    return new ApiError(
      'key_refused',
      `The shop's API refused its key (${status} ${code ?? 'error'}). Please try again later.`,
      details,
    );
  }
  const message = problem?.detail
    ? `${problem.title ?? 'Error'}: ${problem.detail}`
    : `The shop's API answered ${status}.`;
  return new ApiError('problem', message, details);
}

// A failed fetch tells the page nothing: the API may be down, or it may
// have refused this origin (the browser then hides its answer). A no-cors
// request, whose answer the page cannot read, still tells which: it
// succeeds only if the API is up.
async function unreachable() {
  let up = false;
  try {
    await fetch(`${config.api_url}/healthz`, { mode: 'no-cors', cache: 'no-store' });
    up = true;
  } catch {
    up = false;
  }
  if (up) {
    console.error(
      `Jeton storefront: the API at ${config.api_url} answers, but the browser blocked the ` +
        `answer (CORS). Check that this page's origin, ${location.origin}, is among the ` +
        "publishable key's allowed origins (jeton client list), and that its client is not revoked.",
    );
  } else {
    console.error(
      `Jeton storefront: no answer from the API at ${config.api_url}. Is it running, ` +
        'and is api_url in config.json right?',
    );
  }
  return new ApiError(
    'unreachable',
    'The shop cannot reach its API right now. Please try again later.',
    { status: 0, code: up ? 'blocked' : 'no_answer' },
  );
}
