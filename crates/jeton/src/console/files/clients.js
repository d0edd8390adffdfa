// Clients: the list (each with a sparkline of its last 24 hours), one
// client's page (usage by outcome, keys, rotation, edits, revocation,
// refusals) and the creation form, whose key is shown once.

import { api, withQuery, seg } from './api.js';
import { usageFigure, sparkline, OUTCOMES } from './chart.js';
import { grantable } from './roles.js';
import {
  h, field, checkbox, select, form, submit, button, busy, table, when, shownOnce, showStatus, pager,
} from './ui.js';

const KEY_WARNING = 'This key will not be shown again. Copy it now and keep it somewhere safe; '
  + 'if it is lost, rotate the client to get a new one.';

export async function clientsPage(view, ctx) {
  view.append(h('h1', { text: 'Clients' }));
  if (ctx.can('clients:write')) {
    view.append(h('p', {}, h('a', { href: '#/clients/new', class: 'action', text: 'New client' })));
  }
  const holder = h('div');
  view.append(holder);
  const load = async (cursor) => {
    const page = await api('GET', withQuery('/admin/clients', { limit: 50, cursor }));
    if (!ctx.current()) return;
    const usages = await Promise.all(page.data.map((client) => (ctx.can('usage:read')
      ? api('GET', `/admin/clients/${seg(client.id)}/usage`).catch(() => null)
      : null)));
    if (!ctx.current()) return;
    const rows = page.data.map((client, i) => [
      h('a', { href: `#/clients/${seg(client.id)}`, text: client.name }),
      client.kind,
      client.revoked_at ? 'revoked' : 'active',
      client.keys.map((key) => `…${key.last4}`).join(', ') || '—',
      when(client.created_at),
      usages[i] ? sparkline(usages[i]) : '—',
    ]);
    holder.replaceChildren(
      rows.length
        ? table(null, ['Name', 'Kind', 'Status', 'Keys', 'Created', 'Last 24 hours'], rows, { 'aria-label': 'Clients' })
        : h('p', { text: 'No clients yet.' }),
      pager(page.next_cursor, load),
    );
  };
  await load();
}

const RANGES = [
  ['1h', 'Last hour (by minute)'],
  ['24h', 'Last 24 hours (by hour)'],
  ['7d', 'Last 7 days (by day)'],
  ['30d', 'Last 30 days (by day)'],
];

/** The usage API's query for a range: every bucket of it, the current one included. */
export function rangeQuery(range) {
  const now = Date.now();
  const minute = 60 * 1000;
  const day = 24 * 60 * minute;
  switch (range) {
    case '1h': return { granularity: 'minute', from: new Date(now - 59 * minute).toISOString() };
    case '7d': return { granularity: 'day', from: new Date(now - 6 * day).toISOString() };
    case '30d': return { granularity: 'day', from: new Date(now - 29 * day).toISOString() };
    default: return { granularity: 'hour' };
  }
}

/** A usage section with a range chooser, for `path` (a client's or a customer's usage). */
export function usageSection(ctx, path, title, initial = '24h') {
  const holder = h('div', { class: 'usage-holder' });
  const chooser = select(RANGES, { value: initial });
  const refresh = button('Refresh', (event) => busy(event.currentTarget, () => draw(chooser.value)));
  const draw = async (range) => {
    const usage = await api('GET', withQuery(path, rangeQuery(range)));
    if (ctx.current()) holder.replaceChildren(usageFigure(usage, title));
  };
  chooser.addEventListener('change', () => busy(null, () => draw(chooser.value)));
  const section = h('section', { 'aria-labelledby': `${holder.id || 'usage'}-h`, class: 'usage-section' },
    h('h2', { id: `${holder.id || 'usage'}-h`, text: 'Usage by outcome' }),
    h('div', { class: 'inline' }, field('Range', chooser), refresh),
    holder);
  return { section, ready: draw(initial) };
}

function originsText(origins) {
  return (origins || []).join('\n');
}

function parseOrigins(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** A limit field's value: empty means none (null). */
function limitValue(input) {
  const text = input.value.trim();
  return text === '' ? null : Number(text);
}

function abilityBoxes(abilities, chosen) {
  const boxes = abilities.map((ability) => {
    const box = checkbox(ability, { value: ability, checked: chosen.includes(ability) });
    return box;
  });
  const group = h('fieldset', { class: 'abilities' }, h('legend', { text: 'Abilities' }), boxes.map((b) => b.el));
  return { group, values: () => boxes.filter((b) => b.input.checked).map((b) => b.input.value) };
}

export async function clientPage(view, ctx, id) {
  const client = await api('GET', `/admin/clients/${seg(id)}`);
  if (!ctx.current()) return;
  const revoked = Boolean(client.revoked_at);
  const writable = ctx.can('clients:write') && !revoked;
  view.append(
    h('h1', { text: `Client: ${client.name}` }),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Kind' }), h('dd', { text: client.kind }),
      h('dt', { text: 'Status' }), h('dd', {}, revoked ? ['revoked ', when(client.revoked_at)] : 'active'),
      h('dt', { text: 'Id' }), h('dd', {}, h('code', { text: client.id })),
      h('dt', { text: 'Created' }), h('dd', {}, when(client.created_at)),
      h('dt', { text: 'Abilities' }), h('dd', { text: client.abilities.join(', ') || 'none' }),
      h('dt', { text: 'Allowed origins' }), h('dd', { text: client.allowed_origins.join(', ') || 'none' }),
      h('dt', { text: 'Requests per minute' }), h('dd', { text: client.rate_limit_per_minute ?? 'no limit' }),
      h('dt', { text: 'Requests per minute per IP' }), h('dd', { text: client.per_ip_rate_limit_per_minute ?? 'no limit' })),
  );

  let usage = null;
  if (ctx.can('usage:read')) {
    usage = usageSection(ctx, `/admin/clients/${seg(id)}/usage`, client.name);
    view.append(usage.section);
  }

  const keys = h('div');
  const drawKeys = (shown) => {
    const keyRows = shown.keys.map((key) => [
      h('code', { class: 'last4', text: `…${key.last4}` }),
      when(key.created_at),
      key.last_used_at ? when(key.last_used_at) : 'not yet',
      key.expires_at ? when(key.expires_at) : 'never',
      String(key.browser_refusals),
      key.last_browser_refusal_at ? when(key.last_browser_refusal_at) : '—',
      key.exposed_at ? when(key.exposed_at) : 'no',
    ]);
    keys.replaceChildren(keyRows.length
      ? table(null, ['Key', 'Created', 'Last used', 'Stops working', 'Sent from a browser', 'Last time', 'Exposed'], keyRows, { 'aria-label': 'Keys' })
      : h('p', { text: 'No live key.' }));
  };
  drawKeys(client);
  view.append(h('section', { 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h', text: 'Keys' }), keys));

  const newKey = h('div');
  if (writable) {
    const grace = h('input', { type: 'number', min: 0, max: 2592000, step: 1, value: '0', inputmode: 'numeric' });
    view.append(h('section', { 'aria-labelledby': 'rotate-h' },
      h('h2', { id: 'rotate-h', text: 'Rotate the key' }),
      form({ 'aria-label': 'Rotate the key' }, [
        field('Seconds the old keys keep working', grace, '0 stops them at once; 86400 gives a day to deploy the new key.'),
        h('p', {}, submit('Rotate key')),
      ], async () => {
        const rotated = await api('POST', `/admin/clients/${seg(id)}/keys`, {
          previous_key_expires_in_seconds: Number(grace.value || 0),
        });
        newKey.replaceChildren(shownOnce('New key', rotated.key, KEY_WARNING));
        showStatus('The key was rotated.');
        // The list again, without leaving the page (which would drop the new key).
        drawKeys(await api('GET', `/admin/clients/${seg(id)}`));
      }),
      newKey));

    const name = h('input', { type: 'text', value: client.name, required: true, maxlength: 100 });
    const origins = h('textarea', { rows: 3 });
    origins.value = originsText(client.allowed_origins);
    const limit = h('input', { type: 'number', min: 1, value: client.rate_limit_per_minute ?? '' });
    const perIp = h('input', { type: 'number', min: 1, value: client.per_ip_rate_limit_per_minute ?? '' });
    const abilities = abilityBoxes(
      [...new Set([...grantable(ctx.me, client.kind), ...client.abilities])], client.abilities,
    );
    view.append(h('section', { 'aria-labelledby': 'edit-h' },
      h('h2', { id: 'edit-h', text: 'Edit' }),
      form({ 'aria-label': 'Edit the client' }, [
        field('Name', name),
        field('Allowed origins', origins, 'One per line, e.g. https://shop.example'),
        field('Requests per minute', limit, 'Empty: no limit.'),
        client.kind === 'publishable' ? field('Requests per minute per IP', perIp, 'Empty: no limit.') : null,
        abilities.group,
        h('p', {}, submit('Save changes')),
      ], async () => {
        const change = {};
        if (name.value.trim() !== client.name) change.name = name.value.trim();
        const newOrigins = parseOrigins(origins.value);
        if (newOrigins.join('\n') !== client.allowed_origins.join('\n')) change.allowed_origins = newOrigins;
        if (limitValue(limit) !== client.rate_limit_per_minute) change.rate_limit_per_minute = limitValue(limit);
        if (client.kind === 'publishable' && limitValue(perIp) !== client.per_ip_rate_limit_per_minute) {
          change.per_ip_rate_limit_per_minute = limitValue(perIp);
        }
        const chosen = abilities.values();
        if ([...chosen].sort().join(' ') !== [...client.abilities].sort().join(' ')) change.abilities = chosen;
        if (Object.keys(change).length === 0) {
          showStatus('Nothing to save: no field changed.');
          return;
        }
        await api('PATCH', `/admin/clients/${seg(id)}`, change);
        await ctx.reload('The client was saved.');
      })));

    const withTokens = checkbox("Also revoke every token issued to its users");
    const confirm = h('div');
    view.append(h('section', { 'aria-labelledby': 'revoke-h', class: 'danger' },
      h('h2', { id: 'revoke-h', text: 'Revoke the client' }),
      h('p', { text: 'All its keys stop working at once. This cannot be undone.' }),
      withTokens.el,
      h('p', {}, button('Revoke client', () => {
        confirm.replaceChildren(h('p', {},
          h('span', { text: `Revoke ${client.name}${withTokens.input.checked ? ' and its users’ tokens' : ''}? ` }),
          button('Yes, revoke it', (event) => busy(event.currentTarget, async () => {
            await api('DELETE', withQuery(`/admin/clients/${seg(id)}`, {
              revoke_user_tokens: withTokens.input.checked ? 'true' : 'false',
            }));
            await ctx.reload('The client was revoked.');
          })),
          ' ',
          button('Keep it', () => confirm.replaceChildren())));
      })),
      confirm));
  }

  const refusals = h('section', { 'aria-labelledby': 'refusals-h' },
    h('h2', { id: 'refusals-h', text: 'Refusals' }));
  view.append(refusals);
  if (ctx.can('usage:read')) {
    // The refused requests of the last 30 days by outcome: the usage
    // API's totals, which count every refusal.
    const month = await api('GET', withQuery(`/admin/clients/${seg(id)}/usage`, rangeQuery('30d')));
    if (!ctx.current()) return;
    const refused = OUTCOMES.filter(([key]) => key !== 'ok' && month.totals[key] > 0);
    refusals.append(refused.length
      ? table('Refused requests, last 30 days', ['Why', 'Requests'],
        refused.map(([key, words]) => [words, String(month.totals[key])]),
        { 'aria-label': 'Refused requests', rowHeaders: true })
      : h('p', { text: 'No request was refused in the last 30 days.' }));
  }
  if (ctx.can('audit:read')) {
    // Refusals the audit log records, with their address and detail (a
    // secret key seen in a browser, among others).
    const events = await api('GET', withQuery('/admin/audit', { client_id: id, order: 'desc', limit: 100 }));
    if (!ctx.current()) return;
    const recorded = events.data.filter((event) => event.action.includes('refused'));
    if (recorded.length) {
      refusals.append(table('Recorded refusals', ['Time', 'What', 'Address', 'Detail'], recorded.map((event) => [
        when(event.at), event.action, event.client_ip || '—', event.detail || '—',
      ]), { 'aria-label': 'Recorded refusals' }));
    }
  }
  if (usage) await usage.ready;
}

export async function newClientPage(view, ctx) {
  view.append(h('h1', { text: 'New client' }));
  const result = h('div');
  const name = h('input', { type: 'text', required: true, maxlength: 100 });
  const kind = select([['publishable', 'Publishable (a browser or app)'], ['secret', 'Secret (a server)']], { value: 'publishable' });
  const origins = h('textarea', { rows: 3 });
  const limit = h('input', { type: 'number', min: 1 });
  const perIp = h('input', { type: 'number', min: 1 });
  const limitsHint = 'Empty: the server’s default.';
  const abilityHolder = h('div');
  let abilities = null;
  const perIpField = field('Requests per minute per IP', perIp, limitsHint);
  const drawAbilities = () => {
    const options = grantable(ctx.me, kind.value);
    const defaults = kind.value === 'publishable' ? options : [];
    abilities = abilityBoxes(options, defaults);
    abilityHolder.replaceChildren(abilities.group);
    perIpField.hidden = kind.value !== 'publishable';
  };
  kind.addEventListener('change', drawAbilities);
  drawAbilities();
  const create = form({ 'aria-label': 'New client' }, [
    field('Name', name),
    field('Kind', kind),
    field('Allowed origins', origins, 'The sites whose pages may use a publishable key, one per line, e.g. https://shop.example'),
    field('Requests per minute', limit, limitsHint),
    perIpField,
    abilityHolder,
    h('p', {}, submit('Create client')),
  ], async () => {
    const body = {
      name: name.value.trim(),
      kind: kind.value,
      abilities: abilities.values(),
      allowed_origins: parseOrigins(origins.value),
    };
    if (limit.value.trim() !== '') body.rate_limit_per_minute = Number(limit.value);
    if (kind.value === 'publishable' && perIp.value.trim() !== '') body.per_ip_rate_limit_per_minute = Number(perIp.value);
    const created = await api('POST', '/admin/clients', body);
    create.remove();
    result.replaceChildren(
      h('p', { text: `${created.client.name} was created.` }),
      shownOnce('New key', created.key, KEY_WARNING),
      h('p', {}, h('a', { href: `#/clients/${seg(created.client.id)}`, text: 'Go to the client' })),
    );
  });
  view.append(create, result);
}
