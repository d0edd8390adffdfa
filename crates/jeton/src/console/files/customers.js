// Customers: search by email prefix; one customer's page with their live
// tokens (revoke them all), their usage and their orders.

import { api, withQuery, seg } from './api.js';
import { usageSection } from './clients.js';
import { orderRows, ORDER_HEADERS } from './orders.js';
import {
  h, field, form, submit, button, busy, table, when, pager,
} from './ui.js';

export async function customersPage(view, ctx) {
  view.append(h('h1', { text: 'Customers' }));
  const email = h('input', { type: 'search', value: ctx.query.get('email') || '', autocomplete: 'off' });
  const holder = h('div');
  view.append(form({ class: 'inline', role: 'search', 'aria-label': 'Find customers' }, [
    field('Email starts with', email), submit('Search'),
  ], async () => ctx.navigate(withQuery('/customers', { email: email.value.trim() }))), holder);
  const load = async (cursor) => {
    const page = await api('GET', withQuery('/admin/customers', { email: ctx.query.get('email'), limit: 50, cursor }));
    if (!ctx.current()) return;
    holder.replaceChildren(page.data.length
      ? table(null, ['Email', 'Name', 'Registered'], page.data.map((c) => [
        h('a', { href: `#/customers/${seg(c.id)}`, text: c.email }), c.name, when(c.created_at),
      ]), { 'aria-label': 'Customers' })
      : h('p', { text: 'No customer matches.' }), pager(page.next_cursor, load));
  };
  await load();
}

export async function customerPage(view, ctx, id) {
  const customer = await api('GET', `/admin/customers/${seg(id)}`);
  if (!ctx.current()) return;
  view.append(h('h1', { text: `Customer: ${customer.email}` }),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Name' }), h('dd', { text: customer.name }),
      h('dt', { text: 'Registered' }), h('dd', {}, when(customer.created_at)),
      h('dt', { text: 'Live tokens' }), h('dd', { class: 'token-count', text: String(customer.token_count) }),
      h('dt', { text: 'Orders' }), h('dd', { text: String(customer.order_count) })));

  const tokens = await api('GET', withQuery(`/admin/customers/${seg(id)}/tokens`, { limit: 100 }));
  if (!ctx.current()) return;
  const tokenSection = h('section', { 'aria-labelledby': 'tokens-h' }, h('h2', { id: 'tokens-h', text: 'Tokens' }),
    tokens.data.length
      ? table(null, ['Name', 'Token', 'Abilities', 'Created', 'Last used', 'Expires'], tokens.data.map((t) => [
        t.name || '—', h('code', { class: 'last4', text: `…${t.last4}` }), (t.abilities || []).join(', '), when(t.created_at), when(t.last_used_at),
        t.expires_at ? when(t.expires_at) : 'never',
      ]), { 'aria-label': 'Tokens' })
      : h('p', { text: 'No live token.' }));
  if (ctx.can('customers:revoke') && tokens.data.length) {
    const confirm = h('div');
    tokenSection.append(h('p', {}, button('Revoke all tokens', () => {
      confirm.replaceChildren(h('p', {},
        h('span', { text: `Sign ${customer.email} out everywhere? ` }),
        button('Yes, revoke them', (event) => busy(event.currentTarget, async () => {
          await api('POST', `/admin/customers/${seg(id)}/revoke-tokens`);
          await ctx.reload(`Every token of ${customer.email} was revoked.`);
        })),
        ' ',
        button('Keep them', () => confirm.replaceChildren())));
    })), confirm);
  }
  view.append(tokenSection);

  let usage = null;
  if (ctx.can('usage:read')) {
    usage = usageSection(ctx, `/admin/customers/${seg(id)}/usage`, customer.email);
    view.append(usage.section);
  }
  if (ctx.can('orders:read_all')) {
    const orders = await api('GET', withQuery('/admin/orders', { customer_id: id, limit: 50 }));
    if (!ctx.current()) return;
    view.append(h('section', { 'aria-labelledby': 'orders-h' }, h('h2', { id: 'orders-h', text: 'Orders' }),
      orders.data.length
        ? table(null, ORDER_HEADERS, orderRows(orders.data, ctx), { 'aria-label': 'Orders' })
        : h('p', { text: 'No orders.' })));
  }
  if (usage) await usage.ready;
}
