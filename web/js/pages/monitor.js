// Monitor (operator): live charts of the whole deployment from the built-in events
// `admin/monitor/trends` (the last two minutes, then one point every 2 s) and
// `admin/monitor/runInfo`. Asking for them subscribes this connection (tag `sys:monitor`); the
// server then pushes both every 2 s, so the page only listens.

import { h, replace } from '../dom.js';
import { pageHeader, card, errorBox } from './common.js';
import { lineChart } from '../chart.js';
import { formatTime } from '../format.js';

const TRENDS = 'admin/monitor/trends';
const RUN_INFO = 'admin/monitor/runInfo';

const num = (v, digits = 1) => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? String(Math.round(v)) : v.toFixed(digits).replace(/\.0+$/, '')) : '—');

/** `1.5 KiB`, `12 MiB`. */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${num(v)} ${units[i]}`;
}

/** `3 d 4 h`, `5 h 2 min`, `42 s`. */
export function formatUptime(s) {
  if (!Number.isFinite(s)) return '—';
  if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

export default {
  path: '/monitor',
  title: 'Monitor',
  nav: 'Monitor',
  icon: 'activity',
  role: 'operator',
  render(main, ctx) {
    const charts = {
      connections: lineChart({ title: 'Connections and users', testid: 'chart-connections', series: [{ key: 'connections', label: 'connections' }, { key: 'users', label: 'users' }] }),
      messages: lineChart({ title: 'Messages per second', testid: 'chart-messages', format: num, series: [{ key: 'messagesInPerSec', label: 'in' }, { key: 'messagesOutPerSec', label: 'out' }] }),
      bytes: lineChart({ title: 'Bytes per second', testid: 'chart-bytes', format: formatBytes, series: [{ key: 'bytesInPerSec', label: 'in' }, { key: 'bytesOutPerSec', label: 'out' }] }),
      latency: lineChart({ title: 'Send latency (ms)', testid: 'chart-latency', format: (v) => num(v, 2), series: [{ key: 'sendLatencyMs', label: 'mean' }, { key: 'sendsPerSec', label: 'sends/s', format: num }] }),
      cpu: lineChart({ title: 'CPU (% of one core)', testid: 'chart-cpu', format: num, series: [{ key: 'cpuPercent', label: 'cpu' }] }),
      memory: lineChart({ title: 'Memory (resident)', testid: 'chart-memory', format: formatBytes, series: [{ key: 'memoryBytes', label: 'memory' }] }),
    };
    const stat = (label, testid) => {
      const value = h('span', { 'data-testid': testid }, '—');
      return { value, el: h('div', { class: 'stat card' }, h('p', { class: 'stat-label' }, label), h('p', { class: 'stat-value' }, value)) };
    };
    const tiles = {
      nodes: stat('Nodes', 'mon-nodes'),
      connections: stat('Connections', 'mon-connections'),
      users: stat('Users', 'mon-users'),
      uptime: stat('Uptime', 'mon-uptime'),
    };
    const updated = h('span', { class: 'muted small', 'data-testid': 'mon-updated' });
    const errorSlot = h('div');
    const nodesBody = h('tbody');
    const nodesTable = h('table', { class: 'table', 'data-testid': 'mon-node-table' },
      h('caption', { class: 'sr-only' }, 'Figures per node'),
      h('thead', null, h('tr', null, ['Node', 'Connections', 'Users', 'In/s', 'Out/s', 'CPU %', 'Memory', 'Uptime', 'Version'].map((t) => h('th', { scope: 'col' }, t)))),
      nodesBody);
    const closesBox = h('div', { 'data-testid': 'mon-closes' });

    main.append(
      pageHeader('Monitor', 'The whole deployment, summed over its nodes; updated every 2 s over this connection.', updated),
      errorSlot,
      h('div', { class: 'stats' }, Object.values(tiles).map((t) => t.el)),
      h('div', { class: 'charts' }, Object.values(charts).map((c) => c.el)),
      h('div', { class: 'grid-2' },
        card('Nodes', h('div', { class: 'table-wrap' }, nodesTable)),
        card('Closes by code (since start)', closesBox)));

    function addPoint(point) {
      if (!point || !point.total) return;
      for (const c of Object.values(charts)) c.push(point.total);
    }

    function showInfo(point) {
      if (!point || !point.total) return;
      const t = point.total;
      const nodes = Array.isArray(point.nodes) ? point.nodes : [];
      tiles.nodes.value.textContent = String(nodes.length);
      tiles.connections.value.textContent = String(t.connections);
      tiles.users.value.textContent = String(t.users);
      tiles.uptime.value.textContent = formatUptime(t.uptime);
      updated.textContent = `updated ${formatTime(new Date(point.at))}`;
      replace(nodesBody, nodes.map((n) => h('tr', { dataset: { node: n.node } },
        h('td', null, h('code', null, n.node)),
        h('td', { class: 'num' }, String(n.connections)),
        h('td', { class: 'num' }, String(n.users)),
        h('td', { class: 'num' }, num(n.messagesInPerSec)),
        h('td', { class: 'num' }, num(n.messagesOutPerSec)),
        h('td', { class: 'num' }, num(n.cpuPercent)),
        h('td', { class: 'num' }, formatBytes(n.memoryBytes)),
        h('td', null, formatUptime(n.uptime)),
        h('td', null, n.version || '—'))));
      const closes = Object.entries(t.closes || {});
      replace(closesBox, closes.length
        ? h('span', { class: 'chips' }, closes.map(([code, n]) => h('span', { class: 'chip', dataset: { code } }, `${code}: ${n}`)))
        : h('p', { class: 'empty' }, 'No connection has closed yet.'));
    }

    async function subscribe() {
      const socket = ctx.socket;
      if (!socket || socket.state !== 'open') return;
      try {
        const trends = await socket.request(TRENDS);
        const points = (trends.data && trends.data.points) || [];
        for (const c of Object.values(charts)) c.reset(points.map((p) => p.total));
        showInfo(points[points.length - 1]);
        const info = await socket.request(RUN_INFO);
        showInfo(info.data);
        replace(errorSlot);
      } catch (err) {
        replace(errorSlot, errorBox(err));
      }
    }

    ctx.on(TRENDS, (frame) => {
      if (frame.seqno !== undefined && frame.seqno !== null) return;
      const points = (frame.data && frame.data.points) || [];
      for (const p of points) addPoint(p);
    });
    ctx.on(RUN_INFO, (frame) => {
      if (frame.seqno !== undefined && frame.seqno !== null) return;
      showInfo(frame.data);
    });
    // After a reconnect the server no longer has this connection in `sys:monitor`: ask again.
    ctx.on('connected', () => subscribe());
    subscribe();
  },
};
