// The admin API as the console calls it: same origin, the staff session in
// its HttpOnly cookie (sent by the browser, never seen here), and the CSRF
// token on every unsafe method. Errors become ApiError with the problem's
// own words.

const PREFIX = '/api/v1';

/** An answer other than 2xx, with the problem+json body's fields. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(plainWords(status, problem));
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem || {};
  }
}

/** A problem in words a person can act on. */
function plainWords(status, problem) {
  if (!problem || typeof problem !== 'object') {
    return `The server answered ${status} without an explanation.`;
  }
  let text = problem.detail || problem.title || `The server answered ${status}.`;
  if (Array.isArray(problem.errors) && problem.errors.length) {
    const fields = problem.errors
      .map((e) => (e.field ? `${e.field} ${e.message}` : e.message))
      .join('; ');
    if (!text.includes(fields)) text = `${text} (${fields})`;
  }
  return text;
}

let csrfToken = null;

/** The CSRF token of the session: from the sign-in's answer, or from the
 * `jeton_staff_csrf` cookie (path /console) after a reload. */
export function setCsrf(token) {
  csrfToken = token;
}

export function csrfFromCookie() {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === 'jeton_staff_csrf') return decodeURIComponent(rest.join('='));
  }
  return null;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

let onSessionEnded = () => {};

/** What to do when the session is gone (a 401 on a signed-in call). */
export function whenSessionEnds(handler) {
  onSessionEnded = handler;
}

/** One call: `path` under /api/v1, an optional JSON body. */
export async function api(method, path, body, { quietAuth = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method)) {
    const token = csrfToken || csrfFromCookie();
    if (token) headers['X-CSRF-Token'] = token;
  }
  let response;
  try {
    response = await fetch(PREFIX + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    throw new ApiError(0, { detail: 'The server could not be reached. Check the connection and try again.' });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !quietAuth && error.code !== 'mfa_required'
        && error.code !== 'invalid_credentials') {
      onSessionEnded(error);
    }
    throw error;
  }
  return data;
}

/** `path` with the query `params` (entries whose value is empty are left out). */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Encodes one path segment (an id). */
export function seg(id) {
  return encodeURIComponent(id);
}
