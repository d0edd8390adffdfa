// The overview: the shop's requests and refusals of the last 24 hours,
// the clients with a key used from a browser, and the latest audit events.

import { api, withQuery } from './api.js';
import { usageFigure } from './chart.js';
import { h, table, when } from './ui.js';
import { auditRows, AUDIT_HEADERS } from './audit.js';

export async function overviewPage(view, ctx) {
  view.append(h('h1', { text: 'Overview' }));
  const usageSection = h('section', { 'aria-labelledby': 'ov-usage' }, h('h2', { id: 'ov-usage', text: 'Requests, last 24 hours' }));
  const flaggedSection = h('section', { 'aria-labelledby': 'ov-flagged' }, h('h2', { id: 'ov-flagged', text: 'Flagged keys' }));
  const auditSection = h('section', { 'aria-labelledby': 'ov-audit' }, h('h2', { id: 'ov-audit', text: 'Latest audit events' }));
  view.append(usageSection, flaggedSection, auditSection);
  const [usage, flagged, audit] = await Promise.all([
    api('GET', '/admin/usage'),
    api('GET', withQuery('/admin/clients', { flagged: true, limit: 20 })),
    api('GET', withQuery('/admin/audit', { order: 'desc', limit: 10 })),
  ]);
  if (!ctx.current()) return;
  usageSection.append(usageFigure(usage, 'Whole shop'));
  if (flagged.data.length === 0) {
    flaggedSection.append(h('p', { text: 'No key has been sent from a browser or reported exposed.' }));
  } else {
    const rows = [];
    for (const client of flagged.data) {
      for (const key of client.keys.filter((k) => k.browser_refusals > 0 || k.exposed_at)) {
        rows.push([
          h('a', { href: `#/clients/${encodeURIComponent(client.id)}`, text: client.name }),
          `…${key.last4}`,
          String(key.browser_refusals),
          when(key.last_browser_refusal_at),
          when(key.exposed_at),
        ]);
      }
    }
    flaggedSection.append(table('Keys used from a browser or exposed',
      ['Client', 'Key', 'Browser refusals', 'Last refusal', 'Exposed'], rows));
  }
  auditSection.append(audit.data.length
    ? table('The ten most recent events', AUDIT_HEADERS, auditRows(audit.data, ctx))
    : h('p', { text: 'Nothing recorded yet.' }));
  if (ctx.can('audit:read')) auditSection.append(h('p', {}, h('a', { href: '#/audit', text: 'The whole audit log' })));
}
