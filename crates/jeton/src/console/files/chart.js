// Usage charts drawn as SVG from the usage API's answer (API.md §12), each
// with its numbers beside it as text: the totals in a table, and every
// bucket in a second table under "Numbers per bucket". The numbers are the
// API's, unchanged.

import { h, uid } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';

/** The outcomes in the API's order, with their words. */
export const OUTCOMES = [
  ['ok', 'Passed'],
  ['insufficient_scope', 'Missing ability'],
  ['origin_not_allowed', 'Origin not allowed'],
  ['secret_key_in_browser', 'Secret key in a browser'],
  ['csrf_failed', 'CSRF check failed'],
  ['rate_limited', 'Rate limited'],
  ['revoked', 'Revoked credential'],
  ['expired', 'Expired credential'],
];

const UNATTRIBUTED = ['unattributed', 'Unknown or malformed token'];

/** The outcomes an answer has: the shop's has `unattributed` too. */
function outcomesOf(usage) {
  return 'unattributed' in (usage.totals || {}) ? [...OUTCOMES, UNATTRIBUTED] : OUTCOMES;
}

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

function total(counts, outcomes) {
  return outcomes.reduce((sum, [key]) => sum + (counts[key] || 0), 0);
}

/** A bucket's start, as short as its granularity allows. */
export function bucketLabel(iso, granularity) {
  const date = new Date(iso);
  if (granularity === 'day') return date.toLocaleDateString();
  if (granularity === 'hour') {
    return `${date.toLocaleDateString()} ${date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
  }
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * A figure: the stacked bars of `usage` by outcome, a legend, the totals
 * table and the per-bucket table. `title` names it.
 */
export function usageFigure(usage, title) {
  const outcomes = outcomesOf(usage);
  const captionId = uid('chart');
  const series = usage.series || [];
  const width = 640;
  const height = 180;
  const top = 4;
  const bottom = 1;
  const max = Math.max(1, ...series.map((bucket) => total(bucket, outcomes)));
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    class: 'chart',
    role: 'img',
    'aria-labelledby': captionId,
    preserveAspectRatio: 'none',
  });
  const plot = height - top - bottom;
  chart.append(svg('line', { x1: 0, y1: top + plot, x2: width, y2: top + plot, class: 'axis' }));
  const step = series.length ? width / series.length : width;
  series.forEach((bucket, i) => {
    let y = top + plot;
    for (const [key, words] of outcomes) {
      const count = bucket[key] || 0;
      if (!count) continue;
      const barHeight = (count / max) * plot;
      y -= barHeight;
      const rect = svg('rect', {
        x: (i * step + step * 0.1).toFixed(2),
        y: y.toFixed(2),
        width: Math.max(step * 0.8, 0.5).toFixed(2),
        height: barHeight.toFixed(2),
        class: `o-${key}`,
      });
      const tip = svg('title');
      tip.textContent = `${bucketLabel(bucket.time, usage.granularity)}: ${count} ${words.toLowerCase()}`;
      rect.append(tip);
      chart.append(rect);
    }
  });
  // Axis labels as HTML beside the drawing, which stretches with the page:
  // text inside it would stretch too.
  const axis = h('p', { class: 'axis-labels', 'aria-hidden': 'true' },
    h('span', { text: series.length ? bucketLabel(series[0].time, usage.granularity) : '' }),
    h('span', { text: `highest bar: ${max}` }),
    h('span', { text: series.length ? bucketLabel(series[series.length - 1].time, usage.granularity) : '' }));

  const totals = usage.totals || {};
  const all = total(totals, outcomes);
  const refused = all - (totals.ok || 0) - (totals.unattributed || 0);
  const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
    outcomes.map(([key, words]) => h('li', {}, h('span', { class: `swatch o-${key}` }), words)));
  const totalsTable = h('table', { class: 'totals' },
    h('caption', { text: `Totals: ${all} requests, ${refused} refused` }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Outcome' }), h('th', { scope: 'col', text: 'Requests' }))),
    h('tbody', {}, outcomes.map(([key, words]) => h('tr', { 'data-outcome': key },
      h('th', { scope: 'row', text: words }), h('td', { text: String(totals[key] || 0) })))));
  const perBucket = h('table', { class: 'buckets' },
    h('caption', { text: `Requests per ${usage.granularity}` }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Start' }),
      outcomes.map(([, words]) => h('th', { scope: 'col', text: words })))),
    h('tbody', {}, series.map((bucket) => h('tr', { 'data-time': bucket.time },
      h('th', { scope: 'row' }, h('time', { datetime: bucket.time, text: bucketLabel(bucket.time, usage.granularity) })),
      outcomes.map(([key]) => h('td', { 'data-outcome': key, text: String(bucket[key] || 0) }))))));

  return h('figure', {
    class: 'usage',
    'data-granularity': usage.granularity,
    'data-from': usage.from,
    'data-to': usage.to,
  },
  h('figcaption', { id: captionId },
    h('strong', { text: title }), ` — ${all} requests, ${refused} refused, by ${usage.granularity}, `,
    h('time', { datetime: usage.from, text: new Date(usage.from).toLocaleString() }), ' to ',
    h('time', { datetime: usage.to, text: new Date(usage.to).toLocaleString() })),
  h('div', { class: 'chart-wrap' }, h('div', { class: 'plot' }, chart, axis), legend),
  h('div', { class: 'table-wrap' }, totalsTable),
  h('details', {}, h('summary', { text: 'Numbers per bucket' }), h('div', { class: 'table-wrap' }, perBucket)));
}

/** A small line of the requests per bucket, with its total as text. */
export function sparkline(usage) {
  const outcomes = outcomesOf(usage);
  const series = usage.series || [];
  const values = series.map((bucket) => total(bucket, outcomes));
  const width = 120;
  const height = 24;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values
    .map((value, i) => `${(i * step).toFixed(1)},${(height - 1 - (value / max) * (height - 2)).toFixed(1)}`)
    .join(' ');
  const sum = values.reduce((a, b) => a + b, 0);
  const refused = sum - (usage.totals?.ok || 0);
  const line = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'spark', 'aria-hidden': 'true' });
  line.append(svg('polyline', { points, class: 'spark-line' }));
  return h('span', { class: 'sparkline' }, line,
    h('span', { class: 'spark-text', 'data-total': String(sum), text: `${sum} requests, ${refused} refused (24 h)` }));
}
