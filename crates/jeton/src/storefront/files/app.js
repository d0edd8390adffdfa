// The storefront's pages. A hash router (#/, #/products/ID, #/cart, …)
// renders each page into <main> with DOM calls, never with HTML strings, so
// no text from the API can become markup.

import { ApiError, loadConfig, request } from './api.js';
import * as cart from './cart.js';
import { money, when } from './format.js';
import * as session from './session.js';

const PAGE_SIZE = 12;

// ------------------------------------------------------------ DOM helpers

/** h('p', {class: 'x'}, 'text', child…): an element. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A visible label and its control. */
function field(labelText, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintElement = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintElement) input.setAttribute('aria-describedby', hintElement.id);
  return h('p', { class: 'field' }, h('label', { for: id }, labelText), hintElement, input);
}

function priceOf(amount) {
  return h('data', { value: amount.amount }, money(amount));
}

const main = () => document.getElementById('main');

function say(text) {
  document.getElementById('status').textContent = text;
}

// A status said just before navigating: shown on the next page too.
let carryStatus = false;
function sayNext(text) {
  say(text);
  carryStatus = true;
}

function alertText(text) {
  document.getElementById('alert').textContent = text;
}

/** Shows an API failure in plain words; a dead session goes to log in. */
function fail(error) {
  if (error instanceof ApiError && error.kind === 'session_ended') {
    endSession(error.message);
    return;
  }
  // Not a fault of the page: the API will not hand out a guest cart now.
  if (error instanceof cart.CartUnavailable) {
    alertText(error.message);
    return;
  }
  console.error(error);
  alertText(error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`);
}

/** The session is gone: log in again, back to where the shopper was. */
function endSession(message) {
  session.forget();
  cart.reset();
  sessionStorage.setItem('jeton.return_to', location.hash || '#/');
  pendingNotice = message;
  go('#/login');
}

let pendingNotice = null;

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

// ------------------------------------------------------------ navigation

function renderNav() {
  const nav = document.getElementById('nav');
  const items = [
    h('a', { href: '#/' }, 'Catalogue'),
    h('a', { href: '#/cart' }, `Cart (${cart.count()})`),
  ];
  if (session.loggedIn()) {
    items.push(
      h('a', { href: '#/orders' }, 'My orders'),
      h('a', { href: '#/devices' }, 'My devices'),
      h('button', { type: 'button', class: 'link', onclick: logOut }, 'Log out'),
    );
  } else {
    items.push(h('a', { href: '#/login' }, 'Log in'), h('a', { href: '#/register' }, 'Register'));
  }
  nav.replaceChildren(...items.map((item) => h('li', {}, item)));
  const name = session.customer()?.name;
  const current = location.hash || '#/';
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === current.split('?')[0]) link.setAttribute('aria-current', 'page');
  }
  if (name) nav.append(h('li', { class: 'who' }, `Signed in as ${name}`));
}

async function logOut() {
  try {
    await session.logOut();
    cart.reset();
    sayNext('You are logged out.');
  } catch (error) {
    // The session is forgotten here whatever the API said.
    if (!(error instanceof ApiError && error.kind === 'session_ended')) fail(error);
  }
  go('#/');
}

/** Renders a page: a heading that takes the focus, then the content. */
function page(title, ...content) {
  document.title = `${title} · Jeton demo shop`;
  const heading = h('h1', { tabindex: '-1' }, title);
  main().replaceChildren(heading, ...content);
  heading.focus();
}

function needsLogin(what) {
  if (session.loggedIn()) return false;
  sessionStorage.setItem('jeton.return_to', location.hash);
  pendingNotice = `Please log in to see ${what}.`;
  go('#/login');
  return true;
}

// ------------------------------------------------------------ catalogue

async function catalogue(params) {
  const q = params.get('q') ?? '';
  const inStock = params.get('in_stock') === '1';
  const search = h('input', { type: 'search', name: 'q', value: q, autocomplete: 'off' });
  const stockBox = h('input', { type: 'checkbox', name: 'in_stock', id: 'in-stock', checked: inStock });
  const form = h(
    'form',
    { role: 'search', class: 'search', onsubmit: onSearch },
    field('Search products', search),
    h('p', { class: 'check' }, stockBox, h('label', { for: 'in-stock' }, 'In stock only')),
    h('button', { type: 'submit' }, 'Search'),
  );
  const list = h('ul', { class: 'products', 'aria-label': 'Products' });
  const more = h('p', { class: 'more' });
  const summary = h('p', { class: 'summary' });
  page('Catalogue', form, summary, list, more);

  let shown = 0;
  async function loadPage(cursor) {
    const query = new URLSearchParams({ limit: PAGE_SIZE });
    if (q) query.set('q', q);
    if (inStock) query.set('in_stock', 'true');
    if (cursor) query.set('cursor', cursor);
    const result = await request(`/products?${query}`);
    for (const product of result.data) list.append(productCard(product));
    shown += result.data.length;
    summary.textContent =
      shown === 0 ? 'No products match.' : `Showing ${shown} product${shown === 1 ? '' : 's'}.`;
    more.replaceChildren();
    if (result.next_cursor) {
      const button = h('button', { type: 'button' }, 'Load more');
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          await loadPage(result.next_cursor);
          say(`Showing ${shown} products.`);
        } catch (error) {
          button.disabled = false;
          fail(error);
        }
      });
      more.append(button);
    }
  }
  try {
    await loadPage(null);
  } catch (error) {
    summary.textContent = 'No products to show.';
    fail(error);
  }

  function onSearch(event) {
    event.preventDefault();
    const query = new URLSearchParams();
    if (search.value.trim()) query.set('q', search.value.trim());
    if (stockBox.checked) query.set('in_stock', '1');
    const text = query.toString();
    go(text ? `#/?${text}` : '#/');
  }
}

function stockText(product) {
  return product.stock > 0 ? `${product.stock} in stock` : 'Sold out';
}

function productCard(product) {
  const add = h(
    'button',
    { type: 'button', 'aria-label': `Add to cart: ${product.name}`, disabled: product.stock === 0 },
    'Add to cart',
  );
  add.addEventListener('click', async () => {
    alertText('');
    try {
      await cart.add(product, 1);
      say(`Added ${product.name} to your cart.`);
    } catch (error) {
      fail(error);
    }
  });
  return h(
    'li',
    { class: 'card' },
    h('h2', {}, h('a', { href: `#/products/${encodeURIComponent(product.id)}` }, product.name)),
    h('p', { class: 'price' }, priceOf(product.price)),
    h('p', { class: 'stock' }, stockText(product)),
    add,
  );
}

// ------------------------------------------------------------ a product

async function productPage(id) {
  page('Product', h('p', {}, 'Loading…'));
  let product;
  try {
    product = await request(`/products/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      page('Product not found', h('p', {}, h('a', { href: '#/' }, 'Back to the catalogue')));
    } else {
      fail(error);
    }
    return;
  }
  const quantity = h('input', {
    type: 'number',
    name: 'quantity',
    min: 1,
    max: Math.max(1, Math.min(product.stock, 1000)),
    value: 1,
    required: true,
    inputmode: 'numeric',
  });
  const form = h(
    'form',
    { class: 'add', onsubmit: onAdd },
    field('Quantity', quantity),
    h('button', { type: 'submit', disabled: product.stock === 0 }, 'Add to cart'),
  );
  page(
    product.name,
    h('p', {}, h('a', { href: '#/' }, 'Back to the catalogue')),
    h('p', { class: 'description' }, product.description),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Price'), h('dd', {}, priceOf(product.price)),
      h('dt', {}, 'Stock'), h('dd', {}, stockText(product)),
      h('dt', {}, 'SKU'), h('dd', {}, product.sku)),
    form,
  );

  async function onAdd(event) {
    event.preventDefault();
    const n = Number.parseInt(quantity.value, 10);
    if (!Number.isInteger(n) || n < 1 || n > 1000) {
      alertText('Choose a quantity from 1 to 1000.');
      return;
    }
    alertText('');
    try {
      await cart.add(product, n);
      say(`Added ${n} × ${product.name} to your cart.`);
    } catch (error) {
      fail(error);
    }
  }
}

// ------------------------------------------------------------ the cart

/** A line's amount in the cart's currency (unknown only past the total's limits). */
function cartMoney(amount) {
  const currency = cart.total()?.currency;
  return currency ? priceOf({ amount, currency }) : String(amount);
}

/** The cart from the server, then drawn; `fetch: false` draws the copy in memory. */
async function cartPage({ fetch = true } = {}) {
  if (fetch) {
    try {
      await cart.refresh();
    } catch (error) {
      page('Your cart', h('p', {}, 'Your cart cannot be shown right now.'));
      fail(error);
      return;
    }
  }
  const lines = cart.lines();
  if (lines.length === 0) {
    page('Your cart', h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse the catalogue')));
    return;
  }
  const rows = lines.map((line) => {
    const input = h('input', {
      type: 'number',
      min: 1,
      max: 1000,
      value: line.quantity,
      inputmode: 'numeric',
      id: `qty-${line.product_id}`,
    });
    input.addEventListener('change', () => {
      if (input.value !== '') updateCart();
    });
    const removeButton = h('button', { type: 'button', 'aria-label': `Remove ${line.name}` }, 'Remove');
    removeButton.addEventListener('click', async () => {
      removeButton.disabled = true;
      try {
        await cart.remove(line.product_id);
        await cartPage({ fetch: false });
        say(`Removed ${line.name} from your cart.`);
      } catch (error) {
        removeButton.disabled = false;
        fail(error);
      }
    });
    return h(
      'tr',
      {},
      h('th', { scope: 'row' },
        h('a', { href: `#/products/${encodeURIComponent(line.product_id)}` }, line.name),
        line.available ? null : h('span', { class: 'short' }, ' (not enough in stock)')),
      h('td', {}, cartMoney(line.unit_price)),
      h(
        'td',
        {},
        h('label', { for: input.id }, 'Quantity', h('span', { class: 'visually-hidden' }, ` of ${line.name}`)),
        ' ',
        input,
      ),
      h('td', {}, cartMoney(line.unit_price * line.quantity)),
      h('td', {}, removeButton),
    );
  });
  const table = h(
    'table',
    { class: 'lines' },
    h('caption', { class: 'visually-hidden' }, 'Products in your cart'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Product'),
      h('th', { scope: 'col' }, 'Unit price'),
      h('th', { scope: 'col' }, 'Quantity'),
      h('th', { scope: 'col' }, 'Subtotal'),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    h('tbody', {}, rows),
  );
  const form = h('form', { class: 'cart', onsubmit: (event) => { event.preventDefault(); updateCart(); } },
    table,
    h('p', { class: 'update' }, h('button', { type: 'submit' }, 'Update cart')));
  const sum = cart.total();
  const total = h('p', { class: 'total' }, 'Total: ', h('strong', {}, sum ? priceOf(sum) : 'not available'));
  let checkout;
  if (session.loggedIn()) {
    const button = h('button', { type: 'button', class: 'primary' }, 'Place order');
    button.addEventListener('click', () => placeOrder(button));
    checkout = h('section', { 'aria-labelledby': 'checkout-h' },
      h('h2', { id: 'checkout-h' }, 'Checkout'),
      h('p', {}, `Signed in as ${session.customer()?.email ?? 'a customer'}. Your order is placed at once; there is no payment in this demo.`),
      button);
  } else {
    checkout = h('p', {}, h('a', { href: '#/login' }, 'Log in'), ' or ', h('a', { href: '#/register' }, 'register'), ' to place your order: your cart comes with you.');
    sessionStorage.setItem('jeton.return_to', '#/cart');
  }
  page('Your cart', form, total, checkout);

  // Applies every quantity field, then redraws the cart.
  async function updateCart() {
    const wanted = [];
    for (const line of lines) {
      const input = document.getElementById(`qty-${line.product_id}`);
      const n = Number.parseInt(input?.value ?? '', 10);
      if (!Number.isInteger(n) || n < 1 || n > 1000) {
        alertText(`Choose a quantity from 1 to 1000 for ${line.name}.`);
        input?.focus();
        return;
      }
      wanted.push([line.product_id, n]);
    }
    alertText('');
    try {
      for (const [id, n] of wanted) await cart.setQuantity(id, n);
    } catch (error) {
      fail(error);
      return;
    }
    await cartPage({ fetch: false });
    say('Your cart is updated.');
  }
}

/** Places the cart with its Idempotency-Key: at most one order per cart. */
async function placeOrder(button) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  alertText('');
  say('Placing your order…');
  const key = cart.idempotencyKey();
  try {
    let order = null;
    for (let attempt = 0; order === null; attempt += 1) {
      try {
        order = await cart.checkout(key);
      } catch (error) {
        // The same order is still being placed (an earlier attempt): its
        // answer comes with the next try.
        if (error instanceof ApiError && error.code === 'idempotency_key_in_use' && attempt < 20) {
          await new Promise((resolve) => setTimeout(resolve, 250));
        } else {
          throw error;
        }
      }
    }
    pendingNotice = null;
    sayNext(`Thank you! Your order of ${money(order.total)} is placed.`);
    go(`#/orders/${encodeURIComponent(order.id)}`);
  } catch (error) {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    say('');
    if (error instanceof ApiError && error.code === 'insufficient_stock') {
      await explainShortage();
    } else if (error instanceof ApiError && error.code === 'cart_empty') {
      await cartPage();
      alertText('Your cart is empty: there is nothing to order. It may have been ordered or emptied from another device.');
    } else if (error instanceof ApiError && error.code === 'idempotency_key_in_use') {
      alertText('An earlier attempt to place this order is still being processed. Wait a minute, then press Place order again: it will not be placed twice.');
    } else if (error instanceof ApiError && error.kind === 'unreachable') {
      alertText(`${error.message} Your order may not be placed: press Place order again, it will not be placed twice.`);
    } else {
      fail(error);
    }
  }
}

/** Which lines the stock cannot cover (the cart's `available`), and how many are left. */
async function explainShortage() {
  await cartPage();
  const short = [];
  for (const line of cart.lines().filter((l) => !l.available)) {
    let stock = null;
    try {
      stock = (await request(`/products/${encodeURIComponent(line.product_id)}`)).stock;
    } catch {
      // The line is still named, without its count.
    }
    short.push(
      stock === null
        ? `${line.name}: not enough in stock (you asked for ${line.quantity}).`
        : stock === 0
          ? `${line.name} is sold out (you asked for ${line.quantity}).`
          : `Only ${stock} ${line.name} left (you asked for ${line.quantity}).`,
    );
  }
  alertText(
    `Not enough stock: ${short.join(' ') || 'the stock changed, please try again.'} Change the quantity and place the order again.`,
  );
}

// ------------------------------------------------------------ orders

async function ordersPage() {
  if (needsLogin('your orders')) return;
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'orders' },
    h('caption', { class: 'visually-hidden' }, 'Your orders, newest first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Order'),
      h('th', { scope: 'col' }, 'Items'),
      h('th', { scope: 'col' }, 'Total'),
      h('th', { scope: 'col' }, 'Status'))),
    body,
  );
  const more = h('p', { class: 'more' });
  const summary = h('p');
  page('My orders', summary, table, more);
  let shown = 0;
  async function loadPage(cursor) {
    const query = new URLSearchParams({ limit: PAGE_SIZE });
    if (cursor) query.set('cursor', cursor);
    const result = await request(`/me/orders?${query}`, { as: 'user' });
    for (const order of result.data) {
      const items = order.items.reduce((sum, item) => sum + item.quantity, 0);
      body.append(h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: `#/orders/${encodeURIComponent(order.id)}` }, `Order of ${when(order.created_at)}`)),
        h('td', {}, String(items)),
        h('td', {}, priceOf(order.total)),
        h('td', {}, order.status)));
    }
    shown += result.data.length;
    summary.textContent = shown === 0 ? 'You have no orders yet.' : '';
    table.hidden = shown === 0;
    more.replaceChildren();
    if (result.next_cursor) {
      const button = h('button', { type: 'button' }, 'Load more');
      button.addEventListener('click', () => loadPage(result.next_cursor).catch(fail));
      more.append(button);
    }
  }
  try {
    await loadPage(null);
  } catch (error) {
    fail(error);
  }
}

async function orderPage(id) {
  if (needsLogin('this order')) return;
  let order;
  try {
    order = await request(`/me/orders/${encodeURIComponent(id)}`, { as: 'user' });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      page('Order not found', h('p', {}, h('a', { href: '#/orders' }, 'Back to my orders')));
    } else {
      fail(error);
    }
    return;
  }
  const rows = order.items.map((item) =>
    h('tr', {},
      h('th', { scope: 'row' }, item.name),
      h('td', {}, item.sku),
      h('td', {}, String(item.quantity)),
      h('td', {}, priceOf({ amount: item.unit_price, currency: order.total.currency })),
      h('td', {}, priceOf({ amount: item.unit_price * item.quantity, currency: order.total.currency }))));
  page(
    `Order of ${when(order.created_at)}`,
    h('p', {}, h('a', { href: '#/orders' }, 'Back to my orders')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Status'), h('dd', {}, order.status),
      h('dt', {}, 'Order number'), h('dd', {}, order.id)),
    h('table', { class: 'lines' },
      h('caption', { class: 'visually-hidden' }, 'Products in this order'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Product'),
        h('th', { scope: 'col' }, 'SKU'),
        h('th', { scope: 'col' }, 'Quantity'),
        h('th', { scope: 'col' }, 'Unit price'),
        h('th', { scope: 'col' }, 'Subtotal'))),
      h('tbody', {}, rows)),
    h('p', { class: 'total' }, 'Total: ', h('strong', {}, priceOf(order.total))),
  );
}

// ------------------------------------------------------------ devices

async function devicesPage() {
  if (needsLogin('your devices')) return;
  const body = h('tbody');
  const everywhere = h('button', { type: 'button' }, 'Log out everywhere');
  everywhere.addEventListener('click', async () => {
    everywhere.disabled = true;
    try {
      await request('/me/tokens', { method: 'DELETE', as: 'user' });
      session.forget();
      cart.reset();
      pendingNotice = 'You are logged out on every device.';
      go('#/login');
    } catch (error) {
      everywhere.disabled = false;
      fail(error);
    }
  });
  page(
    'My devices',
    h('p', {}, 'Every device or app where you are logged in. Revoke one you do not recognise.'),
    h('table', { class: 'devices' },
      h('caption', { class: 'visually-hidden' }, 'Devices where you are logged in'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Device'),
        h('th', { scope: 'col' }, 'Logged in'),
        h('th', { scope: 'col' }, 'Last used'),
        h('th', { scope: 'col' }, 'Expires'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      body),
    everywhere,
  );
  try {
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: 100 });
      if (cursor) query.set('cursor', cursor);
      const result = await request(`/me/tokens?${query}`, { as: 'user' });
      for (const token of result.data) body.append(deviceRow(token));
      cursor = result.next_cursor;
    } while (cursor);
  } catch (error) {
    fail(error);
  }
}

function deviceRow(token) {
  const here = token.current || token.id === session.tokenId();
  const revoke = h('button', { type: 'button', 'aria-label': `Revoke ${token.name}` }, 'Revoke');
  revoke.addEventListener('click', async () => {
    revoke.disabled = true;
    try {
      await request(`/me/tokens/${encodeURIComponent(token.id)}`, { method: 'DELETE', as: 'user' });
      if (here) {
        session.forget();
        cart.reset();
        pendingNotice = 'You revoked this device: you are logged out.';
        go('#/login');
        return;
      }
      say(`Revoked ${token.name}.`);
      devicesPage();
    } catch (error) {
      revoke.disabled = false;
      fail(error);
    }
  });
  return h('tr', {},
    h('th', { scope: 'row' }, token.name, here ? h('span', { class: 'here' }, ' (this device)') : null),
    h('td', {}, when(token.created_at)),
    h('td', {}, token.last_used_at ? when(token.last_used_at) : 'not yet'),
    h('td', {}, token.expires_at ? when(token.expires_at) : 'never'),
    h('td', {}, revoke));
}

// ------------------------------------------------------------ log in, register

/** The API merged the guest's cart into the customer's: the token is spent. */
async function cartAfterLogin() {
  cart.forgetGuest();
  cart.reset();
  try {
    await cart.refresh();
  } catch {
    // The cart page fetches it again, and says what went wrong.
  }
}

function returnTo() {
  const target = sessionStorage.getItem('jeton.return_to');
  sessionStorage.removeItem('jeton.return_to');
  return target && target !== '#/login' && target !== '#/register' ? target : '#/';
}

function defaultDeviceName() {
  const agent = navigator.userAgent;
  const browser = /Firefox\//.test(agent) ? 'Firefox' : /Edg\//.test(agent) ? 'Edge' : /Chrom/.test(agent) ? 'Chromium' : /Safari\//.test(agent) ? 'Safari' : 'Browser';
  return `${browser} (storefront)`;
}

function loginPage() {
  const notice = pendingNotice;
  pendingNotice = null;
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const device = h('input', { type: 'text', name: 'device_name', value: defaultDeviceName(), required: true, maxlength: 100 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'account', onsubmit: onSubmit },
    field('Email', email),
    field('Password', password),
    field('Device name', device, 'Shown in My devices.'),
    submit);
  page('Log in', notice ? h('p', { class: 'notice' }, notice) : null, form,
    h('p', {}, 'New here? ', h('a', { href: '#/register' }, 'Create an account')));

  async function onSubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    alertText('');
    try {
      await session.logIn(email.value.trim(), password.value, device.value.trim() || defaultDeviceName(), cart.guestToken());
      await cartAfterLogin();
      sayNext(`Welcome${session.customer()?.name ? `, ${session.customer().name}` : ''}!`);
      go(returnTo());
    } catch (error) {
      submit.disabled = false;
      if (error instanceof ApiError && error.code === 'invalid_credentials') {
        alertText('Wrong email or password.');
      } else {
        fail(error);
      }
    }
  }
}

function registerPage() {
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'name', required: true, maxlength: 100 });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create account');
  const form = h('form', { class: 'account', onsubmit: onSubmit },
    field('Name', name),
    field('Email', email),
    field('Password', password, 'From 8 to 256 characters.'),
    submit);
  page('Create an account', form, h('p', {}, 'Already a customer? ', h('a', { href: '#/login' }, 'Log in')));

  async function onSubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    alertText('');
    try {
      // The guest's cart goes to the new account at registration; the
      // login that follows sends the token too, and merges nothing more.
      const guestToken = cart.guestToken();
      const body = { name: name.value.trim(), email: email.value.trim(), password: password.value };
      if (guestToken) body.guest_token = guestToken;
      await request('/customers', { method: 'POST', body });
      await session.logIn(email.value.trim(), password.value, defaultDeviceName(), guestToken);
      await cartAfterLogin();
      sayNext(`Welcome, ${name.value.trim()}! Your account is ready.`);
      go(returnTo());
    } catch (error) {
      submit.disabled = false;
      if (error instanceof ApiError && error.code === 'email_taken') {
        alertText('An account with this email already exists: log in instead.');
      } else if (error instanceof ApiError && error.errors?.length) {
        alertText(`Please check the form: ${error.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}.`);
      } else {
        fail(error);
      }
    }
  }
}

// ------------------------------------------------------------ the router

async function render() {
  alertText('');
  if (!carryStatus) say('');
  carryStatus = false;
  const hash = location.hash || '#/';
  const [path, query = ''] = hash.slice(1).split('?');
  const params = new URLSearchParams(query);
  renderNav();
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) await catalogue(params);
    else if (parts[0] === 'products' && parts.length === 2) await productPage(parts[1]);
    else if (parts[0] === 'cart') await cartPage();
    else if (parts[0] === 'orders' && parts.length === 1) await ordersPage();
    else if (parts[0] === 'orders' && parts.length === 2) await orderPage(parts[1]);
    else if (parts[0] === 'devices') await devicesPage();
    else if (parts[0] === 'login') loginPage();
    else if (parts[0] === 'register') registerPage();
    else page('Page not found', h('p', {}, h('a', { href: '#/' }, 'Back to the catalogue')));
  } catch (error) {
    fail(error);
  }
  renderNav();
}

async function start() {
  try {
    await loadConfig();
  } catch (error) {
    console.error('Jeton storefront: could not read /config.json', error);
    page('The shop is closed', h('p', {}, 'The shop cannot start: its configuration is missing.'));
    return;
  }
  window.addEventListener('hashchange', render);
  window.addEventListener('cartchange', renderNav);
  // The cart used to live in this storage: it is on the server now.
  localStorage.removeItem('jeton.cart');
  // The header's count: the customer's cart, or the guest's if this
  // browser already has one (no guest token is asked for here).
  cart.refresh().catch((error) => {
    if (error instanceof ApiError && error.kind === 'session_ended') cart.reset();
  });
  await render();
}

start();
