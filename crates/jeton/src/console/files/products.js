// Products: the list (stock included), a new product, and one product's
// page to edit it or add to its stock.

import { api, withQuery, seg } from './api.js';
import {
  h, field, form, submit, table, money, fractionDigits, showStatus, pager,
} from './ui.js';

export async function productsPage(view, ctx) {
  view.append(h('h1', { text: 'Products' }),
    h('p', {}, h('a', { href: '#/products/new', class: 'action', text: 'New product' })));
  const q = h('input', { type: 'search', value: ctx.query.get('q') || '' });
  const holder = h('div');
  view.append(form({ class: 'inline', role: 'search', 'aria-label': 'Search products' }, [
    field('Name or SKU contains', q), submit('Search'),
  ], async () => ctx.navigate(withQuery('/products', { q: q.value.trim() }))), holder);
  const load = async (cursor) => {
    const page = await api('GET', withQuery('/admin/products', { q: ctx.query.get('q'), limit: 50, cursor }));
    if (!ctx.current()) return;
    holder.replaceChildren(page.data.length
      ? table(null, ['SKU', 'Name', 'Price', 'Stock'], page.data.map((p) => [
        p.sku, h('a', { href: `#/products/${seg(p.id)}`, text: p.name }), money(p.price), String(p.stock),
      ]), { 'aria-label': 'Products' })
      : h('p', { text: 'No product matches.' }), pager(page.next_cursor, load));
  };
  await load();
}

/** A price typed in major units ("12.50") as minor units for `currency`. */
function toMinor(text, currency) {
  const digits = fractionDigits(currency);
  const value = Number(String(text).replace(',', '.'));
  if (!Number.isFinite(value)) throw new Error('The price is not a number.');
  return Math.round(value * 10 ** digits);
}

function toMajor(price) {
  const digits = fractionDigits(price.currency);
  return (price.amount / 10 ** digits).toFixed(digits);
}

function productFields(product) {
  const inputs = {
    sku: h('input', { type: 'text', required: true, value: product?.sku ?? '' }),
    name: h('input', { type: 'text', required: true, value: product?.name ?? '' }),
    description: h('textarea', { rows: 3 }),
    price: h('input', { type: 'text', inputmode: 'decimal', required: true, value: product ? toMajor(product.price) : '' }),
    currency: h('input', { type: 'text', required: true, maxlength: 3, value: product?.price.currency ?? 'EUR' }),
  };
  inputs.description.value = product?.description ?? '';
  const fields = [
    field('SKU', inputs.sku),
    field('Name', inputs.name),
    field('Description', inputs.description),
    h('div', { class: 'inline pair' }, field('Price', inputs.price), field('Currency', inputs.currency, 'ISO 4217, e.g. EUR')),
  ];
  const values = () => {
    const currency = inputs.currency.value.trim().toUpperCase();
    return {
      sku: inputs.sku.value.trim(),
      name: inputs.name.value.trim(),
      description: inputs.description.value,
      price: { amount: toMinor(inputs.price.value, currency), currency },
    };
  };
  return { fields, values };
}

export async function newProductPage(view, ctx) {
  view.append(h('h1', { text: 'New product' }));
  const product = productFields(null);
  const stock = h('input', { type: 'number', min: 0, value: '0', required: true });
  view.append(form({ 'aria-label': 'New product' }, [
    ...product.fields, field('Stock', stock), h('p', {}, submit('Create product')),
  ], async () => {
    const created = await api('POST', '/admin/products', { ...product.values(), stock: Number(stock.value) });
    ctx.flash(`${created.name} was created.`);
    ctx.navigate(`/products/${seg(created.id)}`);
  }));
}

export async function productPage(view, ctx, id) {
  // The admin API has no single-product route: the product is found in
  // its list, which shows stock and is read from the database.
  const product = await findProduct(id);
  if (!ctx.current()) return;
  view.append(h('h1', { text: `Product: ${product.name}` }),
    h('p', {}, `Stock: `, h('strong', { class: 'stock', text: String(product.stock) }), ` · ${money(product.price)}`));
  const edit = productFields(product);
  view.append(h('section', { 'aria-labelledby': 'edit-h' }, h('h2', { id: 'edit-h', text: 'Edit' }),
    form({ 'aria-label': 'Edit the product' }, [...edit.fields, h('p', {}, submit('Save changes'))], async () => {
      const values = edit.values();
      const change = {};
      for (const key of ['sku', 'name', 'description']) if (values[key] !== product[key]) change[key] = values[key];
      if (values.price.amount !== product.price.amount || values.price.currency !== product.price.currency) {
        change.price = values.price;
      }
      if (Object.keys(change).length === 0) {
        showStatus('Nothing to save: no field changed.');
        return;
      }
      await api('PATCH', `/admin/products/${seg(id)}`, change);
      await ctx.reload('The product was saved.');
    })));
  const delta = h('input', { type: 'number', required: true, step: 1 });
  view.append(h('section', { 'aria-labelledby': 'stock-h' }, h('h2', { id: 'stock-h', text: 'Restock' }),
    form({ 'aria-label': 'Restock' }, [
      field('Units to add', delta, 'A negative number takes units away.'),
      h('p', {}, submit('Update stock')),
    ], async () => {
      const updated = await api('PATCH', `/admin/products/${seg(id)}`, { stock_delta: Number(delta.value) });
      await ctx.reload(`Stock is now ${updated.stock}.`);
    })));
}

async function findProduct(id) {
  let cursor;
  for (;;) {
    const page = await api('GET', withQuery('/admin/products', { limit: 100, cursor }));
    const found = page.data.find((p) => p.id === id);
    if (found) return found;
    if (!page.next_cursor) throw new Error('No such product.');
    cursor = page.next_cursor;
  }
}
