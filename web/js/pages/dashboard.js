// Dashboard: this browser's connection (state, client id, latency), the cluster-wide totals
// (operators: from GET /api/websocket/stats every 5 s) and the live log of pushes.

import { h, replace } from '../dom.js';
import { pageHeader, card, button, details } from './common.js';
import { formatTime, compactJson, isoTime } from '../format.js';

const STATE_LABEL = {
  idle: 'Starting', connecting: 'Connecting', open: 'Connected', reconnecting: 'Reconnecting', closed: 'Disconnected',
};

export default {
  path: '/dashboard',
  title: 'Dashboard',
  nav: 'Dashboard',
  icon: 'dashboard',
  role: null,
  render(main, ctx) {
    const stateValue = h('span', { class: 'state-badge', 'data-testid': 'dash-state' });
    const clientId = h('code', { class: 'stat-code', 'data-testid': 'client-id' });
    const latency = h('span', { 'data-testid': 'latency' });
    const latencyNote = h('span', { class: 'stat-note' });
    const reconnects = h('span', { 'data-testid': 'reconnects' });
    const reconnectNote = h('span', { class: 'stat-note' });
    const stateNote = h('span', { class: 'stat-note' });
    const pingButton = button('Ping now', ping, { kind: 'secondary', 'data-testid': 'ping-now' });

    const stats = h('div', { class: 'stats' },
      stat('Connection', stateValue, stateNote),
      stat('Client ID', clientId, h('span', { class: 'stat-note' }, 'from the connected greeting')),
      stat('Latency', latency, latencyNote),
      stat('Reconnects', reconnects, reconnectNote));

    const infoBox = h('div');
    const logList = h('ol', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Live event log', 'data-testid': 'event-log' });
    const empty = h('p', { class: 'empty' }, 'No events yet. Pushes to you, your tags or everyone appear here as they arrive.');
    const logCount = h('span', { class: 'muted small' });

    const totals = ctx.hasRole('operator') ? buildTotals() : null;

    main.append(
      pageHeader('Dashboard', 'Your own WebSocket connection to Switchboard, live.', pingButton,
        button('Reconnect', () => ctx.socket && ctx.socket.reconnect(), { kind: 'ghost' })),
      stats,
      totals ? totals.el : null,
      h('div', { class: 'grid-2' },
        card('This connection', infoBox),
        card('Live log',
          h('div', { class: 'toolbar' }, logCount, button('Clear', () => ctx.log.clear(), { kind: 'ghost', class: 'btn btn-ghost btn-sm' })),
          empty, logList)));

    /** Everyone connected, on every node: the same counts as the online list. */
    function buildTotals() {
      const value = (testid) => h('span', { 'data-testid': testid }, '—');
      const connections = value('total-connections');
      const users = value('total-users');
      const tags = value('total-tags');
      const node = value('total-node');
      const note = h('p', { class: 'muted small' });
      const el = card('All connections',
        h('div', { class: 'stats' },
          stat('Connections', connections, h('span', { class: 'stat-note' }, 'cluster-wide')),
          stat('Users', users, h('span', { class: 'stat-note' }, 'with at least one connection')),
          stat('Tags', tags, h('span', { class: 'stat-note' }, 'with members')),
          stat('This panel is served by', node, h('span', { class: 'stat-note' }, 'node'))),
        note);
      async function load() {
        try {
          const s = await ctx.api.stats();
          connections.textContent = String(s.connections);
          users.textContent = String(s.users);
          tags.textContent = String(s.tags);
          node.textContent = s.node;
          note.textContent = `updated ${formatTime(new Date())}`;
        } catch (err) {
          note.textContent = `totals unavailable: ${err.message}`;
        }
      }
      load();
      ctx.every(5000, () => { if (document.visibilityState !== 'hidden') load(); });
      return { el };
    }

    function stat(label, value, note) {
      return h('div', { class: 'stat card' }, h('p', { class: 'stat-label' }, label), h('p', { class: 'stat-value' }, value), note);
    }

    function renderConn() {
      const conn = ctx.conn;
      const socket = ctx.socket;
      stateValue.textContent = STATE_LABEL[conn.state] || conn.state;
      stateValue.dataset.state = conn.state;
      stateNote.textContent = conn.state === 'open' && conn.connectedAt ? `since ${formatTime(conn.connectedAt)}`
        : conn.state === 'reconnecting' && conn.nextAttemptAt ? `next try in ${Math.max(0, Math.ceil((conn.nextAttemptAt - Date.now()) / 1000))} s`
          : '';
      const id = socket && socket.clientId;
      clientId.textContent = id ? String(id) : '—';
      const rtt = socket && socket.latency;
      latency.textContent = rtt === null || rtt === undefined ? '—' : `${Math.round(rtt)} ms`;
      latencyNote.textContent = 'round trip of a ping request';
      reconnects.textContent = String(conn.reconnects);
      reconnectNote.textContent = conn.lastClose ? `last close code ${conn.lastClose.code}` : 'since login';
      pingButton.disabled = !(socket && socket.state === 'open');

      const info = (socket && socket.info) || {};
      const user = ctx.user || {};
      replace(infoBox, details([
        ['User', `${user.username ?? '—'} (id ${user.id ?? '—'})`],
        ['Roles', (user.roles || []).join(', ') || '—'],
        ['Node', info.node ?? '—'],
        ['Ping interval', info.pingInterval !== undefined ? `${info.pingInterval} s` : '—'],
        ['Idle timeout', info.idleTimeout !== undefined ? `${info.idleTimeout} s` : '—'],
        ['My tags', socket && socket.tags.length ? socket.tags.join(', ') : 'none'],
      ]));
    }

    function entryNode(entry) {
      const meta = [];
      if (entry.stream) meta.push(h('span', { class: 'log-stream', title: 'stream and offset' }, `${entry.stream}${entry.offset !== undefined ? ` #${entry.offset}` : ''}`));
      const body = entry.kind === 'push'
        ? h('code', { class: 'log-data' }, entry.data === undefined ? '(no data)' : compactJson(entry.data, 400))
        : h('span', { class: 'log-text' }, entry.text || '');
      return h('li', { class: `log-entry log-${entry.kind}`, dataset: { event: entry.event } },
        h('time', { datetime: isoTime(entry.time), class: 'log-time' }, formatTime(entry.time)),
        h('span', { class: `log-event ${entry.kind === 'push' ? 'is-push' : ''}` }, entry.event),
        meta, body);
    }

    function renderLog() {
      replace(logList, ctx.log.entries.slice().reverse().map(entryNode));
      empty.hidden = ctx.log.entries.length > 0;
      logCount.textContent = `${ctx.log.entries.length} ${ctx.log.entries.length === 1 ? 'entry' : 'entries'}, newest first`;
    }

    async function ping() {
      if (!ctx.socket) return;
      try {
        await ctx.socket.ping();
      } catch (err) {
        ctx.toast({ kind: 'error', title: 'Ping failed', message: err.message });
      }
    }

    renderConn();
    renderLog();
    ctx.onConn(renderConn);
    ctx.every(1000, renderConn); // keeps "next try in N s" current
    const unsubscribe = ctx.log.subscribe((entry) => {
      if (entry === null) {
        renderLog();
        return;
      }
      logList.prepend(entryNode(entry));
      while (logList.children.length > 300) logList.lastElementChild.remove();
      empty.hidden = true;
      logCount.textContent = `${ctx.log.entries.length} ${ctx.log.entries.length === 1 ? 'entry' : 'entries'}, newest first`;
    });
    ctx.onCleanup(unsubscribe);
  },
};
