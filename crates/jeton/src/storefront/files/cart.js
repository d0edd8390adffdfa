// The cart lives in the browser (localStorage), not on the server: it holds
// what the shopper picked and, once they check out, the Idempotency-Key of
// that order. The key is reused for every attempt to place the same cart (a
// double click, a retry after a timeout or a lost answer), so the API places
// at most one order for it; any change to the cart drops it.

const STORAGE_KEY = 'jeton.cart';

function load() {
  try {
    const cart = JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (cart && Array.isArray(cart.lines)) return cart;
  } catch {
    // A damaged cart is an empty one.
  }
  return { lines: [], idempotency_key: null };
}

function save(cart, changed) {
  if (changed) cart.idempotency_key = null;
  localStorage.setItem(STORAGE_KEY, JSON.stringify(cart));
  window.dispatchEvent(new Event('cartchange'));
}

/** `[{product_id, name, unit_price: {amount, currency}, quantity}]` */
export function lines() {
  return load().lines;
}

export function count() {
  return lines().reduce((sum, line) => sum + line.quantity, 0);
}

/** The total, or null for an empty cart. */
export function total() {
  const all = lines();
  if (all.length === 0) return null;
  return {
    amount: all.reduce((sum, line) => sum + line.unit_price.amount * line.quantity, 0),
    currency: all[0].unit_price.currency,
  };
}

export function add(product, quantity) {
  const cart = load();
  const line = cart.lines.find((l) => l.product_id === product.id);
  if (line) {
    line.quantity = Math.min(line.quantity + quantity, 1000);
  } else {
    cart.lines.push({
      product_id: product.id,
      name: product.name,
      unit_price: product.price,
      quantity,
    });
  }
  save(cart, true);
}

export function setQuantity(productId, quantity) {
  const cart = load();
  const line = cart.lines.find((l) => l.product_id === productId);
  if (!line || line.quantity === quantity) return;
  line.quantity = quantity;
  save(cart, true);
}

export function remove(productId) {
  const cart = load();
  cart.lines = cart.lines.filter((l) => l.product_id !== productId);
  save(cart, true);
}

export function clear() {
  save({ lines: [], idempotency_key: null }, true);
}

/** The key for placing this cart: made once, kept until the cart changes. */
export function idempotencyKey() {
  const cart = load();
  if (!cart.idempotency_key) {
    cart.idempotency_key = newKey();
    save(cart, false);
  }
  return cart.idempotency_key;
}

// 128 random bits as hex (crypto.randomUUID needs a secure context).
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The order's body: what the API needs, nothing it would refuse. */
export function orderBody() {
  return {
    items: lines().map((line) => ({ product_id: line.product_id, quantity: line.quantity })),
  };
}
