// The cart lives on the server (API.md §16): the page only keeps a copy
// in memory, to draw the header's count and the cart page, and refreshes
// it from every answer that changes it.
//
// Whose cart it is:
// - a logged-in customer's: reached with their session (session.js);
// - a guest's: reached with a guest token, asked for at the first add to
//   the cart (never on a mere visit, so that the many visitors behind one
//   carrier's NAT do not run out of issuance for that IP). The token is
//   kept in localStorage, so the cart survives a reload and a closed tab;
//   it can only reach this one cart and read products, from this origin
//   (see docs/storefront.md). At login or registration it is sent along,
//   the API merges the guest's cart into the customer's, and the page
//   forgets it.
//
// The Idempotency-Key of a checkout is kept with the cart's version:
// every attempt to place the same cart (a double click, a retry after a
// lost answer) sends the same key, so the API places at most one order for
// it; once the cart changes, a new key is made.

import { ApiError, request } from './api.js';
import * as session from './session.js';

const GUEST_KEY = 'jeton.guest';
const CHECKOUT_KEY = 'jeton.checkout';
const MAX_UNITS = 1000;

const EMPTY = Object.freeze({ items: [], total: null, updated_at: null });

/** The last cart the API sent, or null before the first answer. */
let cached = null;

// Cart calls run one after another: an add reads the line's quantity
// before it sets the new one, and the first add asks for the guest token.
let queue = Promise.resolve();
function serially(task) {
  const run = queue.then(task, task);
  queue = run.catch(() => {});
  return run;
}

// ------------------------------------------------------------ the guest token

/** The guest's `{token, expires_at}`, or null. */
function guest() {
  let stored = null;
  try {
    stored = JSON.parse(localStorage.getItem(GUEST_KEY));
  } catch {
    stored = null;
  }
  if (!stored || typeof stored.token !== 'string') return null;
  if (stored.expires_at && Date.parse(stored.expires_at) <= Date.now()) {
    forgetGuest();
    return null;
  }
  return stored;
}

/** The guest token to merge at login or registration, or null. */
export function guestToken() {
  return guest()?.token ?? null;
}

/** Forgets the guest token (merged, or refused by the API). */
export function forgetGuest() {
  localStorage.removeItem(GUEST_KEY);
}

/** The cart could not be reached: issuance refused, say. */
export class CartUnavailable extends Error {
  constructor(cause) {
    super('The cart is unavailable right now. You can keep browsing the shop; please try adding to your cart again later.');
    this.name = 'CartUnavailable';
    this.cause = cause;
  }
}

async function issueGuest() {
  let issued;
  try {
    issued = await request('/guest', { method: 'POST', body: {} });
  } catch (error) {
    throw new CartUnavailable(error);
  }
  if (!issued || typeof issued.token !== 'string') throw new CartUnavailable(null);
  localStorage.setItem(GUEST_KEY, JSON.stringify({ token: issued.token, expires_at: issued.expires_at }));
}

// ------------------------------------------------------------ calls

/** A cart call as its owner: the customer, the guest, or nobody (null). */
async function call(path, options = {}) {
  if (session.loggedIn()) return request(path, { ...options, as: 'user' });
  const token = guestToken();
  if (!token) return null;
  try {
    return await request(path, { ...options, as: 'guest', token });
  } catch (error) {
    // Expired, revoked or merged: that cart is gone for this page.
    if (error instanceof ApiError && error.kind === 'guest_ended') {
      forgetGuest();
      return null;
    }
    throw error;
  }
}

function keep(cart) {
  cached = cart ?? EMPTY;
  window.dispatchEvent(new Event('cartchange'));
  return cached;
}

// ------------------------------------------------------------ reading

/** The cart as last seen: `{items, total, updated_at}`. */
export function current() {
  return cached ?? EMPTY;
}

/** `[{product_id, sku, name, quantity, unit_price, available}]` */
export function lines() {
  return current().items;
}

export function count() {
  return lines().reduce((sum, line) => sum + line.quantity, 0);
}

/** The total, or null for an empty cart. */
export function total() {
  return current().total;
}

/** Fetches the cart from the API (an empty one for a visitor without any). */
export function refresh() {
  return serially(async () => keep(await call('/cart')));
}

/** Forgets the copy in memory (the owner changed); the next refresh fills it. */
export function reset() {
  keep(EMPTY);
}

// ------------------------------------------------------------ changing

/** Adds `quantity` units of a product, asking for a guest token if needed. */
export function add(product, quantity) {
  return serially(async () => {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (!session.loggedIn() && !guestToken()) {
        await issueGuest();
        cached = EMPTY;
      }
      if (cached === null) cached = (await call('/cart')) ?? EMPTY;
      const line = cached.items.find((l) => l.product_id === product.id);
      const wanted = Math.min((line?.quantity ?? 0) + quantity, MAX_UNITS);
      const cart = await call(`/cart/items/${encodeURIComponent(product.id)}`, {
        method: 'PUT',
        body: { quantity: wanted },
      });
      // null: the guest token ended meanwhile; its cart is gone, start anew.
      if (cart !== null) return keep(cart);
      cached = null;
    }
    throw new CartUnavailable(null);
  });
}

/** Sets a line's quantity (0 removes it). */
export function setQuantity(productId, quantity) {
  return serially(async () => {
    const line = lines().find((l) => l.product_id === productId);
    if (line && line.quantity === quantity) return current();
    return keep(await call(`/cart/items/${encodeURIComponent(productId)}`, {
      method: 'PUT',
      body: { quantity },
    }));
  });
}

export function remove(productId) {
  return serially(async () =>
    keep(await call(`/cart/items/${encodeURIComponent(productId)}`, { method: 'DELETE' })));
}

export function clear() {
  return serially(async () => keep(await call('/cart', { method: 'DELETE' })));
}

// ------------------------------------------------------------ checkout

/** The key for placing this cart: made once, kept until the cart changes. */
export function idempotencyKey() {
  // The cart's version: when it changed, and what it holds (two changes
  // within one tick of `updated_at` still make a new key).
  const cart = current();
  const version = [cart.updated_at ?? '', ...cart.items.map((l) => `${l.product_id}:${l.quantity}`)].join(' ');
  let stored = null;
  try {
    stored = JSON.parse(localStorage.getItem(CHECKOUT_KEY));
  } catch {
    stored = null;
  }
  if (stored && stored.version === version && typeof stored.key === 'string') return stored.key;
  const key = newKey();
  localStorage.setItem(CHECKOUT_KEY, JSON.stringify({ key, version }));
  return key;
}

/** The order placed from the cart; the cart is then empty. */
export function checkout(key) {
  return serially(async () => {
    const order = await request('/cart/checkout', {
      method: 'POST',
      as: 'user',
      headers: { 'Idempotency-Key': key },
    });
    localStorage.removeItem(CHECKOUT_KEY);
    keep(EMPTY);
    return order;
  });
}

// 128 random bits as hex (crypto.randomUUID needs a secure context).
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
