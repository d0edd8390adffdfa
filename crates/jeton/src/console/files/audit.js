// The audit log, newest first, filtered by staff member, type and time.

import { api, withQuery, seg } from './api.js';
import {
  h, field, select, form, submit, table, when, pager,
} from './ui.js';

export const AUDIT_HEADERS = ['Time', 'Action', 'By', 'Client', 'Customer', 'Address', 'Detail'];

const ACTIONS = [
  'client.created', 'client.updated', 'client.key_rotated', 'client.revoked',
  'client_key.refused_origin', 'client_key.refused_in_browser', 'access_token.refused_in_browser',
  'session.refused_origin', 'session.refused_csrf', 'user_token.issued', 'user_token.revoked',
  'user_tokens.revoked_all', 'login.failed', 'product.created', 'product.updated', 'order.cancelled',
  'staff.created', 'staff.invited', 'staff.invitation_accepted', 'staff.disabled', 'staff.enabled',
  'staff.role_changed', 'staff.signed_in', 'staff.sign_in_failed', 'staff.signed_out',
  'staff.password_changed', 'staff.mfa_enabled', 'staff.mfa_reset',
  'staff_session.refused_origin', 'staff_session.refused_csrf',
];

let directory = null;

/** Staff members' names by id: the whole team for who may list it
 * (staff:manage), else only the signed-in member. */
export async function staffNames(ctx) {
  const names = new Map([[ctx.me.id, ctx.me.name]]);
  if (ctx.can('staff:manage')) {
    if (!directory) {
      directory = api('GET', '/admin/staff')
        .then((page) => page.data)
        .catch(() => []);
    }
    for (const member of await directory) names.set(member.id, member.name);
  }
  return names;
}

/** Forgets the team's names (after a change on the staff page). */
export function forgetStaffNames() {
  directory = null;
}

function actor(event, ctx, names) {
  const { kind, id } = event.actor || {};
  if (kind === 'staff') {
    const name = names?.get(id);
    const label = name ? `${name}${id === ctx.me.id ? ' (you)' : ''}` : `staff member ${id}`;
    return h('span', { class: 'actor', 'data-staff-id': id, text: label });
  }
  if (kind === 'client_key') return `key ${id ? `${id.slice(-8)}` : ''}`.trim();
  if (kind === 'customer') return 'customer';
  if (kind === 'cli') return 'command line';
  return kind || '—';
}

export function auditRows(events, ctx, names) {
  return events.map((event) => [
    when(event.at),
    event.action,
    actor(event, ctx, names || new Map([[ctx.me.id, ctx.me.name]])),
    event.client_id ? h('a', { href: `#/clients/${seg(event.client_id)}`, text: event.client_id.slice(-8) }) : '—',
    event.customer_id ? h('a', { href: `#/customers/${seg(event.customer_id)}`, text: event.customer_id.slice(-8) }) : '—',
    event.client_ip || '—',
    event.detail || '—',
  ]);
}

/** A datetime-local value as RFC 3339 UTC, or empty. */
function toUtc(value) {
  return value ? new Date(value).toISOString() : '';
}

function toLocalInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export async function auditPage(view, ctx) {
  view.append(h('h1', { text: 'Audit log' }));
  const names = await staffNames(ctx);
  const q = ctx.query;
  const chosen = q.get('staff_id') || '';
  const options = [['', 'Anyone'], ...[...names].map(([id, name]) => [id, id === ctx.me.id ? `${name} (you)` : name])];
  if (chosen && !names.has(chosen)) options.push([chosen, `staff member ${chosen}`]);
  const staff = select(options, { value: chosen });
  const type = h('input', { type: 'text', list: 'audit-actions', value: q.get('type') || '', autocomplete: 'off' });
  const from = h('input', { type: 'datetime-local', value: toLocalInput(q.get('from')) });
  const to = h('input', { type: 'datetime-local', value: toLocalInput(q.get('to')) });
  const holder = h('div');
  view.append(form({ class: 'filters', 'aria-label': 'Filter the audit log' }, [
    field('Staff member', staff),
    field('Type', type, 'e.g. client.created'),
    h('datalist', { id: 'audit-actions' }, ACTIONS.map((action) => h('option', { value: action }))),
    field('From', from),
    field('To', to),
    h('p', {}, submit('Filter')),
  ], async () => ctx.navigate(withQuery('/audit', {
    staff_id: staff.value, type: type.value.trim(), from: toUtc(from.value), to: toUtc(to.value),
  }))), holder);
  const load = async (cursor) => {
    const page = await api('GET', withQuery('/admin/audit', {
      staff_id: q.get('staff_id'), type: q.get('type'), from: q.get('from'), to: q.get('to'),
      order: 'desc', limit: 50, cursor,
    }));
    if (!ctx.current()) return;
    holder.replaceChildren(page.data.length
      ? table(null, AUDIT_HEADERS, auditRows(page.data, ctx, names), { 'aria-label': 'Audit events' })
      : h('p', { text: 'No event matches.' }), pager(page.next_cursor, load));
  };
  await load();
}
