// Event catalogue: every WebSocket event and server push, read from the AsyncAPI document
// (GET /api/asyncapi.json), with the request and reply data schemas the server derives from its
// handlers' types, and a form that sends a request over this tab's own socket.

import { h, replace } from '../dom.js';
import { pageHeader, card, button, errorBox } from './common.js';

/** Follows `#/a/b` references inside the document, at any depth (cycles stop at the second visit). */
function inline(doc, node, seen = new Set()) {
  if (Array.isArray(node)) return node.map((n) => inline(doc, n, seen));
  if (!node || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
    if (seen.has(node.$ref)) return { $ref: node.$ref };
    const target = node.$ref.slice(2).split('/').reduce((o, k) => (o ? o[k] : undefined), doc);
    return inline(doc, target, new Set([...seen, node.$ref]));
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inline(doc, v, seen)]));
}

/** The `data` schema of the first message of an operation's message list, inlined. */
function dataSchema(doc, messages) {
  const msg = inline(doc, (messages || [])[0]);
  const data = msg && msg.payload && msg.payload.properties ? msg.payload.properties.data : undefined;
  return data === undefined ? null : data;
}

/** The catalogue rows: one per operation, requests first, sorted by event name. */
export function catalogue(doc) {
  return Object.values(doc.operations || {}).map((op) => ({
    event: op['x-switchboard-event'] || op.title,
    action: op.action,
    role: op['x-switchboard-role'] || null,
    addon: op['x-switchboard-addon'] || null,
    description: op.description || op.summary || '',
    request: op.action === 'send' ? dataSchema(doc, op.messages) : null,
    reply: op.action === 'send' ? dataSchema(doc, op.reply && op.reply.messages) : dataSchema(doc, op.messages),
  })).sort((a, b) => (a.action === b.action ? a.event.localeCompare(b.event) : a.action === 'send' ? -1 : 1));
}

const pretty = (schema) => (schema === null ? 'none' : JSON.stringify(schema, null, 2));

export default {
  path: '/events',
  title: 'Events',
  nav: 'Events',
  icon: 'activity',
  role: null,
  render(main, ctx) {
    const list = h('div', { class: 'stack', 'data-testid': 'event-catalogue' }, h('p', { class: 'muted' }, 'Loading…'));
    main.append(
      pageHeader('Events', 'Every WebSocket event this server answers and every message it pushes, with the data schemas taken from the handlers’ own types.',
        h('a', { class: 'btn btn-secondary', href: '/api/asyncapi.json', target: '_blank', rel: 'noopener' }, 'AsyncAPI document')),
      list);

    function tryIt(row) {
      const input = h('textarea', { rows: '4', class: 'code', 'aria-label': `Request data for ${row.event}`, 'data-testid': 'try-data' }, '{}');
      const out = h('pre', { class: 'code small', 'data-testid': 'try-reply', 'aria-live': 'polite' });
      async function send() {
        let data;
        try {
          data = input.value.trim() === '' ? null : JSON.parse(input.value);
        } catch (err) {
          out.textContent = `Not JSON: ${err.message}`;
          return;
        }
        if (!ctx.socket || ctx.socket.state !== 'open') {
          out.textContent = 'Not connected.';
          return;
        }
        try {
          const reply = await ctx.socket.request(row.event, data);
          out.textContent = JSON.stringify(reply, null, 2);
        } catch (err) {
          out.textContent = `${err.code !== undefined ? `${err.code}: ` : ''}${err.message}`;
        }
      }
      return h('div', { class: 'stack' }, input, button('Send over my socket', send, { kind: 'primary', 'data-testid': 'try-send' }), out);
    }

    function entry(row) {
      const meta = [row.action === 'send' ? 'request' : 'push', row.role ? `needs ${row.role}` : 'any connection', row.addon ? `from ${row.addon}` : null].filter(Boolean).join(' · ');
      return h('details', { class: 'card', dataset: { event: row.event, action: row.action } },
        h('summary', null, h('code', null, row.event), ' ', h('span', { class: 'muted small' }, meta)),
        row.description ? h('p', null, row.description) : null,
        row.action === 'send' ? [h('h3', null, 'Request data'), h('pre', { class: 'code small', 'data-testid': 'request-schema' }, pretty(row.request))] : null,
        h('h3', null, row.action === 'send' ? 'Reply data' : 'Pushed data'),
        h('pre', { class: 'code small', 'data-testid': 'reply-schema' }, pretty(row.reply)),
        row.action === 'send' ? tryIt(row) : null);
    }

    async function load() {
      try {
        const res = await fetch('/api/asyncapi.json');
        if (!res.ok) throw new Error(`GET /api/asyncapi.json: ${res.status}`);
        const rows = catalogue(await res.json());
        replace(list, card(`Requests (${rows.filter((r) => r.action === 'send').length})`, rows.filter((r) => r.action === 'send').map(entry)),
          card(`Server pushes (${rows.filter((r) => r.action === 'receive').length})`, rows.filter((r) => r.action === 'receive').map(entry)));
      } catch (err) {
        replace(list, errorBox(err));
      }
    }
    load();
  },
};
