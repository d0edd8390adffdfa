// Orders: every customer's, by status, with a cancel button for placed
// ones (stock returns).

import { api, withQuery, seg } from './api.js';
import {
  h, field, select, form, submit, button, busy, table, when, money, pager,
} from './ui.js';

export const ORDER_HEADERS = ['Order', 'Placed', 'Customer', 'Items', 'Total', 'Status', 'Action'];

export function orderRows(orders, ctx) {
  return orders.map((order) => [
    h('code', { text: order.id.slice(-8), title: order.id }),
    when(order.created_at),
    h('a', { href: `#/customers/${seg(order.customer_id)}`, text: 'customer' }),
    order.items.map((item) => `${item.quantity} × ${item.name}`).join(', '),
    money(order.total),
    order.status,
    order.status === 'placed' && ctx.can('orders:cancel')
      ? button('Cancel order', (event) => busy(event.currentTarget, async () => {
        await api('POST', `/admin/orders/${seg(order.id)}/cancel`);
        await ctx.reload('The order was cancelled; its stock is back.');
      }), { 'aria-label': `Cancel order ${order.id.slice(-8)}` })
      : '—',
  ]);
}

export async function ordersPage(view, ctx) {
  view.append(h('h1', { text: 'Orders' }));
  const status = select([['', 'Any'], ['placed', 'Placed'], ['cancelled', 'Cancelled']], { value: ctx.query.get('status') || '' });
  const holder = h('div');
  view.append(form({ class: 'inline', 'aria-label': 'Filter orders' }, [
    field('Status', status), submit('Show'),
  ], async () => ctx.navigate(withQuery('/orders', { status: status.value }))), holder);
  const load = async (cursor) => {
    const page = await api('GET', withQuery('/admin/orders', { status: ctx.query.get('status'), limit: 50, cursor }));
    if (!ctx.current()) return;
    holder.replaceChildren(page.data.length
      ? table(null, ORDER_HEADERS, orderRows(page.data, ctx), { 'aria-label': 'Orders' })
      : h('p', { text: 'No orders.' }), pager(page.next_cursor, load));
  };
  await load();
}
