// Webhooks (API.md §14): the endpoints, the creation form (whose signing
// secret is shown once), and one endpoint's page: edits, disabling,
// secret rotation, a test event and the delivery log with retries.

import { api, withQuery, seg } from './api.js';
import {
  h, field, checkbox, form, submit, button, busy, table, when, shownOnce, showStatus, pager,
} from './ui.js';

/** The event types an endpoint may subscribe to (webhooks/events.rs). */
export const EVENT_TYPES = [
  'client.created', 'client.updated', 'client.revoked', 'key.rotated', 'credential.exposed',
  'key.used_from_browser', 'customer.created', 'customer.tokens_revoked', 'order.placed',
  'order.cancelled', 'staff.signed_in', 'staff.changed',
];

const ALL = '*';

const SECRET_WARNING = 'This signing secret will not be shown again. Copy it now into the receiver’s '
  + 'configuration; if it is lost, rotate the secret to get a new one.';

const ROTATED_WARNING = 'This new signing secret will not be shown again. Copy it now. '
  + 'The old secret keeps signing beside it for 24 hours, so the receiver can switch without losing an event.';

function eventsText(events) {
  return events.includes(ALL) ? 'all events' : events.join(', ');
}

function statusText(webhook) {
  if (!webhook.disabled_at) return 'enabled';
  return webhook.disabled_reason ? `disabled (${webhook.disabled_reason})` : 'disabled';
}

/** Event checkboxes with an "All events" box that covers every type. */
function eventBoxes(chosen) {
  const all = checkbox('All events, present and future', { value: ALL, checked: chosen.includes(ALL) });
  const boxes = EVENT_TYPES.map((type) => checkbox(type, { value: type, checked: chosen.includes(type) }));
  const sync = () => {
    for (const box of boxes) box.input.disabled = all.input.checked;
  };
  all.input.addEventListener('change', sync);
  sync();
  const group = h('fieldset', { class: 'abilities' }, h('legend', { text: 'Events' }),
    all.el, boxes.map((b) => b.el));
  return {
    group,
    values: () => (all.input.checked ? [ALL] : boxes.filter((b) => b.input.checked).map((b) => b.input.value)),
  };
}

export async function webhooksPage(view, ctx) {
  view.append(h('h1', { text: 'Webhooks' }));
  if (ctx.can('clients:write')) {
    view.append(h('p', {}, h('a', { href: '#/webhooks/new', class: 'action', text: 'New webhook' })));
  }
  const page = await api('GET', '/admin/webhooks');
  if (!ctx.current()) return;
  const rows = page.data.map((webhook) => [
    h('a', { href: `#/webhooks/${seg(webhook.id)}`, text: webhook.url }),
    eventsText(webhook.events),
    webhook.description || '—',
    statusText(webhook),
    when(webhook.created_at),
  ]);
  view.append(rows.length
    ? table(null, ['URL', 'Events', 'Description', 'Status', 'Created'], rows, { 'aria-label': 'Webhooks' })
    : h('p', { text: 'No webhook yet.' }));
}

export async function newWebhookPage(view) {
  view.append(h('h1', { text: 'New webhook' }));
  const result = h('div');
  const url = h('input', { type: 'url', required: true, maxlength: 2048, placeholder: 'https://hooks.shop.example/jeton' });
  const description = h('input', { type: 'text', maxlength: 500 });
  const events = eventBoxes([]);
  const create = form({ 'aria-label': 'New webhook' }, [
    field('URL', url, 'Where the events are sent, with https.'),
    field('Description', description, 'Optional: what receives them.'),
    events.group,
    h('p', {}, submit('Create webhook')),
  ], async () => {
    const body = { url: url.value.trim(), events: events.values() };
    if (description.value.trim() !== '') body.description = description.value.trim();
    const created = await api('POST', '/admin/webhooks', body);
    create.remove();
    result.replaceChildren(
      h('p', { text: `The webhook to ${created.webhook.url} was created.` }),
      shownOnce('Signing secret', created.secret, SECRET_WARNING),
      h('p', {}, h('a', { href: `#/webhooks/${seg(created.webhook.id)}`, text: 'Go to the webhook' })),
    );
  });
  view.append(create, result);
}

export async function webhookPage(view, ctx, id) {
  const webhook = await api('GET', `/admin/webhooks/${seg(id)}`);
  if (!ctx.current()) return;
  const writable = ctx.can('clients:write');
  view.append(
    h('h1', { text: `Webhook: ${webhook.url}` }),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Status' }), h('dd', {}, webhook.disabled_at ? [statusText(webhook), ' ', when(webhook.disabled_at)] : 'enabled'),
      h('dt', { text: 'Events' }), h('dd', { text: eventsText(webhook.events) }),
      h('dt', { text: 'Description' }), h('dd', { text: webhook.description || '—' }),
      h('dt', { text: 'Id' }), h('dd', {}, h('code', { text: webhook.id })),
      h('dt', { text: 'Created' }), h('dd', {}, when(webhook.created_at)),
      webhook.previous_secret_expires_at ? [
        h('dt', { text: 'Previous secret signs until' }), h('dd', {}, when(webhook.previous_secret_expires_at)),
      ] : null),
  );

  const log = h('div');
  const drawLog = async (cursor) => {
    const page = await api('GET', withQuery(`/admin/webhooks/${seg(id)}/deliveries`, { limit: 20, cursor }));
    if (!ctx.current()) return;
    const rows = page.data.map((delivery) => [
      delivery.event_type,
      delivery.status,
      String(delivery.attempts),
      delivery.response_code === null || delivery.response_code === undefined
        ? (delivery.error || '—') : String(delivery.response_code),
      when(delivery.last_attempt_at || delivery.created_at),
      // The receiver's answer is text: shown as such, never parsed.
      delivery.response_body ? h('pre', { class: 'response', text: delivery.response_body }) : '—',
      writable ? button('Retry', (event) => busy(event.currentTarget, async () => {
        await api('POST', `/admin/webhooks/${seg(id)}/deliveries/${seg(delivery.id)}/retry`);
        showStatus(`The ${delivery.event_type} delivery will be sent again.`);
        await drawLog();
      }), { 'aria-label': `Retry the ${delivery.event_type} delivery of ${delivery.created_at}` }) : null,
    ].filter((cell) => cell !== null));
    const headers = ['Event', 'Status', 'Attempts', 'Response', 'Time', 'Response body'];
    if (writable) headers.push('Actions');
    log.replaceChildren(
      rows.length
        ? table(null, headers, rows, { 'aria-label': 'Deliveries' })
        : h('p', { text: 'Nothing delivered yet.' }),
      pager(page.next_cursor, drawLog),
    );
  };

  if (writable) {
    view.append(h('section', { 'aria-labelledby': 'test-h' },
      h('h2', { id: 'test-h', text: 'Send a test event' }),
      h('p', { text: 'A webhook.test event to this endpoint alone; its delivery shows in the log below.' }),
      h('p', {}, button('Send test event', (event) => busy(event.currentTarget, async () => {
        await api('POST', `/admin/webhooks/${seg(id)}/test`);
        showStatus('A test event is on its way.');
        await drawLog();
      })))));
  }

  view.append(h('section', { 'aria-labelledby': 'log-h' },
    h('h2', { id: 'log-h', text: 'Deliveries' }),
    h('p', {}, button('Refresh', (event) => busy(event.currentTarget, () => drawLog()))),
    log));
  await drawLog();
  if (!ctx.current() || !writable) return;

  const newSecret = h('div');
  view.append(h('section', { 'aria-labelledby': 'rotate-h' },
    h('h2', { id: 'rotate-h', text: 'Rotate the signing secret' }),
    h('p', { text: 'A new secret signs every event from now on; the old one keeps signing beside it for 24 hours.' }),
    h('p', {}, button('Rotate secret', (event) => busy(event.currentTarget, async () => {
      const rotated = await api('POST', `/admin/webhooks/${seg(id)}/rotate-secret`);
      newSecret.replaceChildren(shownOnce('New signing secret', rotated.secret, ROTATED_WARNING));
      showStatus('The signing secret was rotated.');
    }))),
    newSecret));

  const url = h('input', { type: 'url', required: true, maxlength: 2048, value: webhook.url });
  const description = h('input', { type: 'text', maxlength: 500, value: webhook.description || '' });
  const events = eventBoxes(webhook.events);
  view.append(h('section', { 'aria-labelledby': 'edit-h' },
    h('h2', { id: 'edit-h', text: 'Edit' }),
    form({ 'aria-label': 'Edit the webhook' }, [
      field('URL', url),
      field('Description', description),
      events.group,
      h('p', {}, submit('Save changes')),
    ], async () => {
      const change = {};
      if (url.value.trim() !== webhook.url) change.url = url.value.trim();
      if (description.value.trim() !== (webhook.description || '')) change.description = description.value.trim();
      const chosen = events.values();
      if ([...chosen].sort().join(' ') !== [...webhook.events].sort().join(' ')) change.events = chosen;
      if (Object.keys(change).length === 0) {
        showStatus('Nothing to save: no field changed.');
        return;
      }
      await api('PATCH', `/admin/webhooks/${seg(id)}`, change);
      await ctx.reload('The webhook was saved.');
    })));

  const disabled = Boolean(webhook.disabled_at);
  view.append(h('section', { 'aria-labelledby': 'state-h', class: disabled ? null : 'danger' },
    h('h2', { id: 'state-h', text: disabled ? 'Enable the webhook' : 'Disable the webhook' }),
    h('p', {
      text: disabled
        ? 'Events are sent to it again from now on.'
        : 'No event is sent to it while it is disabled.',
    }),
    h('p', {}, button(disabled ? 'Enable webhook' : 'Disable webhook', (event) => busy(event.currentTarget, async () => {
      await api('PATCH', `/admin/webhooks/${seg(id)}`, { disabled: !disabled });
      await ctx.reload(disabled ? 'The webhook is enabled.' : 'The webhook is disabled.');
    })))));
}
