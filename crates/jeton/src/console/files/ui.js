// Small DOM helpers. Text is always set as text (never parsed as HTML), so
// nothing the API returns can add markup to the page.

let counter = 0;

/** A fresh element id. */
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * An element: `attrs` are attributes, but `text` sets its text, `class`
 * its class, and functions under `on…` become listeners. Children are
 * nodes or strings; null and false are left out; arrays are flattened.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'class') el.className = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = Boolean(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A labelled control: the label's `for` names the control. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('field');
  const parts = [h('label', { for: control.id, text: label }), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId, text: hint }));
  }
  return h('div', { class: 'field' }, parts);
}

/** A labelled checkbox. */
export function checkbox(label, attrs = {}) {
  const input = h('input', { type: 'checkbox', id: uid('check'), ...attrs });
  return { input, el: h('div', { class: 'check' }, input, h('label', { for: input.id, text: label })) };
}

/** A labelled select with `options` as [value, text] pairs. */
export function select(options, attrs = {}) {
  const el = h('select', attrs);
  for (const [value, text] of options) {
    el.append(h('option', { value, text }));
  }
  if (attrs.value !== undefined) el.value = attrs.value;
  return el;
}

/** The page's one alert: an error in plain words, read out at once. */
export function showError(error) {
  const alert = document.getElementById('alert');
  if (!alert) return;
  alert.textContent = error instanceof Error ? error.message : String(error);
  alert.hidden = false;
  alert.scrollIntoView({ block: 'nearest' });
}

/** A confirmation (role status): what just happened. */
export function showStatus(text) {
  const status = document.getElementById('status');
  if (!status) return;
  status.textContent = text;
  status.hidden = false;
}

export function clearMessages() {
  for (const id of ['alert', 'status']) {
    const el = document.getElementById(id);
    if (el) {
      el.textContent = '';
      el.hidden = true;
    }
  }
}

/**
 * Runs `action` (an async function) for a form or a button: disables the
 * button while it runs and shows the error, if any, in the alert.
 */
export async function busy(button, action) {
  clearMessages();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A form that runs `action(form)` on submit, with its submit button busy. */
export function form(attrs, children, action) {
  const el = h('form', { novalidate: false, ...attrs }, children);
  el.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(el.querySelector('button[type=submit]'), () => action(el));
  });
  return el;
}

export function button(text, onclick, attrs = {}) {
  return h('button', { type: 'button', onclick, ...attrs, text });
}

export function submit(text, attrs = {}) {
  return h('button', { type: 'submit', ...attrs, text });
}

/** A table with a caption, header cells and rows of cells (nodes or text). */
export function table(caption, headers, rows, options = {}) {
  const { rowHeaders, ...attrs } = options;
  const t = h('table', attrs);
  if (caption) t.append(h('caption', { text: caption }));
  t.append(h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col', text })))));
  const body = h('tbody');
  for (const row of rows) {
    body.append(h('tr', {}, row.map((cell, i) => (i === 0 && rowHeaders
      ? h('th', { scope: 'row' }, cell)
      : h('td', {}, cell)))));
  }
  t.append(body);
  return h('div', { class: 'table-wrap' }, t);
}

/** When, in the reader's time zone, with the UTC instant in a tooltip. */
export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return h('time', { datetime: iso, title: iso, text: date.toLocaleString() });
}

/** A price `{amount, currency}` in the currency's own notation. */
export function money(price) {
  if (!price) return '—';
  const digits = fractionDigits(price.currency);
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: price.currency })
      .format(price.amount / 10 ** digits);
  } catch {
    return `${price.amount} ${price.currency}`;
  }
}

/** Minor units per major unit of `currency`, as 10^digits. */
export function fractionDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency })
      .resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** A key or link shown once: the text, a copy button and the warning. */
export function shownOnce(label, secret, warning) {
  const id = uid('secret');
  const output = h('output', { id, class: 'secret', 'aria-label': label, text: secret });
  const copied = h('span', { class: 'copied', role: 'status' });
  const copy = button(`Copy ${label.toLowerCase()}`, async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copied.textContent = 'Copied.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(output);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  });
  return h('section', { class: 'once', 'aria-labelledby': `${id}-title` },
    h('h2', { id: `${id}-title`, text: label }),
    h('p', { class: 'warning', text: warning }),
    output,
    h('p', {}, copy, ' ', copied));
}

/** A pager: a "Next page" button when the API gave a cursor. */
export function pager(nextCursor, load) {
  if (!nextCursor) return document.createDocumentFragment();
  return h('p', {}, button('Next page', () => load(nextCursor)));
}
