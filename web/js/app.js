// The admin panel's composition root: session, socket, shell (header + navigation) and hash router.

import { SwitchboardSocket } from './socket.js';
import { createApi } from './api.js';
import { loadSession, saveSession, clearSession, setFlash, hasRole } from './session.js';
import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { showToast } from './toast.js';
import { applyStoredTheme, toggleTheme, currentTheme } from './theme.js';
import { EventLog } from './event-log.js';
import { compactJson } from './format.js';
import loginPage from './pages/login.js';
import dashboardPage from './pages/dashboard.js';
import onlinePage from './pages/online.js';
import sendPage from './pages/send.js';
import tagsPage from './pages/tags.js';
import hgexamplePage from './pages/hgexample.js';
import monitorPage from './pages/monitor.js';
import usersPage from './pages/users.js';
import apiKeysPage from './pages/apikeys.js';
import auditPage from './pages/audit.js';
import eventsPage from './pages/events.js';

/**
 * Pages in navigation order. Each: {path, title, nav, icon, role, render(main, ctx)}; the menu
 * lists only the pages the user's role may open.
 */
const PAGES = [dashboardPage, onlinePage, sendPage, tagsPage, monitorPage, usersPage, apiKeysPage, auditPage, eventsPage, hgexamplePage];

/** Pushed every 2 s to a connection that opened the monitor: charted there, not logged. */
const isMonitorEvent = (event) => typeof event === 'string' && event.startsWith('admin/monitor/');
const HOME = '/dashboard';

const app = {
  session: loadSession(),
  socket: null,
  log: new EventLog(),
  /** Connection facts for the UI, updated from socket events. */
  conn: { state: 'idle', reconnects: 0, connectedAt: null, lastClose: null, nextAttemptAt: null },
  connListeners: new Set(),
  pendingPath: null,
  mounted: null,
  shell: null,
  routedOnce: false,
};

app.api = createApi({
  getToken: () => (app.session ? app.session.token : null),
  onUnauthorized: () => endSession({
    kind: 'expired',
    title: 'Your session has ended',
    message: 'The server no longer accepts your login (expired or revoked). Please log in again.',
  }),
});

// Exposed for debugging from the console and for the browser tests.
window.switchboardPanel = app;

// ------------------------------------------------------------------ session

async function startSession(session) {
  app.session = session;
  saveSession(session);
  await startSocket();
}

/** Log out locally (and, when asked, on the server) and show `flash` on the login page. */
function endSession(flash, { callServer = false } = {}) {
  if (!app.session) return;
  const token = app.session.token;
  const socket = app.socket;
  app.socket = null;
  app.session = null;
  if (socket) socket.close(1000, 'logout');
  if (callServer) {
    fetch('/api/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  }
  clearSession();
  app.log.clear();
  app.conn = { state: 'idle', reconnects: 0, connectedAt: null, lastClose: null, nextAttemptAt: null };
  setFlash(flash || null);
  navigate('/login', { replace: true });
}

async function socketUrl() {
  try {
    const config = await app.api.siteConfig();
    if (config && typeof config.wsAddr === 'string' && config.wsAddr) return config.wsAddr;
  } catch {
    // The server may be restarting; fall back to this origin and let the socket retry.
  }
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/socket`;
}

function notifyConn() {
  for (const fn of app.connListeners) fn(app.conn);
  renderConnStatus();
}

async function startSocket() {
  const url = await socketUrl();
  if (!app.session) return; // logged out meanwhile
  const socket = new SwitchboardSocket({ url, token: () => (app.session ? app.session.token : null) });
  app.socket = socket;
  const log = app.log;

  socket.on('state', ({ state }) => {
    if (socket !== app.socket) return;
    app.conn.state = state;
    if (state !== 'reconnecting') app.conn.nextAttemptAt = null;
    notifyConn();
  });
  socket.on('connected', (frame) => {
    app.conn.connectedAt = new Date();
    const d = frame.data || {};
    log.add({ kind: 'system', event: 'connected', text: `Connected as client ${d.id ?? '?'}${d.node ? ` on node ${d.node}` : ''}`, data: d });
    notifyConn();
    socket.ping().catch(() => {}); // a first latency figure without waiting for the heartbeat
  });
  socket.on('reconnecting', ({ attempt, delay, code, reason }) => {
    if (socket !== app.socket) return;
    app.conn.reconnects += 1;
    app.conn.lastClose = { code, reason };
    app.conn.nextAttemptAt = Date.now() + delay;
    log.add({ kind: 'warning', event: 'disconnected', text: `Connection lost (code ${code}${reason ? `: ${reason}` : ''}); retry ${attempt + 1} in ${(delay / 1000).toFixed(1)} s` });
    notifyConn();
    // A handshake refused for an expired token looks like any network error to a browser: ask
    // the HTTP API once in a while, and go back to login if the token is no longer valid.
    if (attempt > 0 && attempt % 3 === 1) app.api.me().catch(() => {});
  });
  socket.on('latency', () => notifyConn());
  socket.on('tags', () => notifyConn());
  socket.on('*', (frame) => {
    const isReply = frame.seqno !== undefined && frame.seqno !== null;
    if (isReply || frame.event === 'connected' || frame.event === 'ping' || isMonitorEvent(frame.event)) return;
    log.add({ kind: 'push', event: frame.event, data: frame.data, stream: frame.stream, offset: frame.offset, code: frame.code });
  });
  socket.on('notice', (frame) => {
    const { title, message } = describeNotice(frame.data);
    showToast({ title, message, kind: 'info', event: 'notice' });
  });
  socket.on('recovered', ({ recovered, missed }) => {
    const ok = Object.keys(recovered).filter((s) => recovered[s] === true);
    if (ok.length) log.add({ kind: 'system', event: 'recover', text: `Recovered missed pushes of ${ok.join(', ')}` });
    if (missed.length) {
      log.add({ kind: 'warning', event: 'recover', text: `Could not recover ${missed.join(', ')}: some pushes were lost while disconnected` });
      showToast({
        kind: 'warning',
        title: 'Some messages may be missing',
        message: `While the connection was down, pushes on ${missed.join(', ')} left the server's history. Reload the data you are looking at.`,
        event: 'recover-gap',
      });
    }
  });
  socket.on('recoverfailed', ({ error }) => {
    log.add({ kind: 'warning', event: 'recover', text: `Recovery failed: ${error.message}` });
  });
  socket.on('closed', ({ code, terminal, kickReason, reason }) => {
    if (socket !== app.socket || !terminal) return;
    if (code === 4001) {
      endSession({
        kind: 'kicked',
        title: 'You were disconnected by an operator',
        message: kickReason ? `Reason: ${kickReason}` : 'No reason was given.',
        reason: kickReason || '',
      });
    } else {
      endSession({
        kind: 'revoked',
        title: 'Your session has ended',
        message: `Your login was revoked or has expired${reason ? ` (${reason})` : ''}. Please log in again.`,
      });
    }
  });
  socket.connect();
  notifyConn();
}

/** Turn a notice's data (string or object) into toast text. */
function describeNotice(data) {
  if (data === null || data === undefined) return { title: 'Notice', message: '' };
  if (typeof data !== 'object') return { title: 'Notice', message: String(data) };
  const title = data.title ?? data.subject ?? 'Notice';
  const body = data.message ?? data.content ?? data.text ?? data.body ?? data.msg;
  return { title: String(title), message: body !== undefined ? (typeof body === 'string' ? body : compactJson(body)) : (data.title ? '' : compactJson(data)) };
}

// ------------------------------------------------------------------ router

function currentPath() {
  const hash = location.hash || '';
  if (!hash.startsWith('#/')) return null;
  return hash.slice(1).split('?')[0];
}

function navigate(path, { replace: replaceEntry = false } = {}) {
  const target = `#${path}`;
  if (location.hash === target) {
    route();
  } else if (replaceEntry) {
    history.replaceState(null, '', target);
    route();
  } else {
    location.hash = target;
  }
}

function unmount() {
  if (!app.mounted) return;
  for (const fn of app.mounted.cleanups.splice(0)) {
    try { fn(); } catch (err) { console.error(err); }
  }
  app.mounted = null;
}

function route() {
  const path = currentPath();
  if (path === null) {
    // Not a route (empty, or an in-page anchor): go to the default page.
    if (!location.hash) navigate(app.session ? HOME : '/login', { replace: true });
    return;
  }
  if (!app.session) {
    if (path !== '/login') {
      app.pendingPath = path;
      navigate('/login', { replace: true });
      return;
    }
    mountLogin();
    return;
  }
  if (path === '/login') {
    navigate(HOME, { replace: true });
    return;
  }
  const page = PAGES.find((p) => p.path === path);
  if (!page) {
    navigate(HOME, { replace: true });
    return;
  }
  if (!hasRole(app.session.user, page.role)) {
    showToast({ kind: 'warning', title: 'Not available', message: `${page.title} needs the ${page.role} role.` });
    navigate(HOME, { replace: true });
    return;
  }
  mountPage(page);
}

function makeContext(cleanups) {
  const ctx = {
    api: app.api,
    get user() { return app.session ? app.session.user : null; },
    get socket() { return app.socket; },
    get conn() { return app.conn; },
    log: app.log,
    toast: showToast,
    navigate,
    hasRole: (role) => hasRole(app.session && app.session.user, role),
    onCleanup: (fn) => cleanups.push(fn),
    /** Subscribe to a socket event for as long as the page is shown. */
    on(event, fn) {
      if (!app.socket) return;
      cleanups.push(app.socket.on(event, fn));
    },
    /** Be told about connection changes (state, latency, reconnects). */
    onConn(fn) {
      app.connListeners.add(fn);
      cleanups.push(() => app.connListeners.delete(fn));
    },
    every(ms, fn) {
      const id = setInterval(fn, ms);
      cleanups.push(() => clearInterval(id));
    },
  };
  return ctx;
}

function mountLogin() {
  unmount();
  app.shell = null;
  const root = document.getElementById('app');
  const cleanups = [];
  app.mounted = { page: loginPage, cleanups };
  document.title = 'Log in · Switchboard';
  const ctx = makeContext(cleanups);
  ctx.login = async (username, password) => {
    const result = await app.api.login(username, password);
    await startSession({ token: result.token, expiresAt: result.expiresAt, user: result.user });
    const next = app.pendingPath && app.pendingPath !== '/login' ? app.pendingPath : HOME;
    app.pendingPath = null;
    navigate(next, { replace: true });
  };
  replace(root);
  loginPage.render(root, ctx);
  app.routedOnce = true;
}

function mountPage(page) {
  unmount();
  if (!app.shell) buildShell();
  const cleanups = [];
  app.mounted = { page, cleanups };
  document.title = `${page.title} · Switchboard`;
  const main = app.shell.main;
  replace(main);
  for (const link of app.shell.links) {
    if (link.dataset.path === page.path) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  app.shell.nav.classList.remove('is-open');
  app.shell.navToggle.setAttribute('aria-expanded', 'false');
  page.render(main, makeContext(cleanups));
  // After an in-app navigation, move focus to the new page's heading (screen readers announce it).
  if (app.routedOnce) {
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  }
  app.routedOnce = true;
}

// ------------------------------------------------------------------ shell

function buildShell() {
  const root = document.getElementById('app');
  const user = app.session.user;
  const visible = PAGES.filter((p) => hasRole(user, p.role));
  const links = visible.map((p) => h('a', { href: `#${p.path}`, class: 'nav-link', dataset: { path: p.path } }, icon(p.icon), h('span', null, p.nav || p.title)));
  const nav = h('nav', { id: 'nav', class: 'sidebar', 'aria-label': 'Main' }, h('ul', { role: 'list' }, links.map((a) => h('li', null, a))));
  const navToggle = h('button', {
    type: 'button', class: 'btn btn-ghost btn-icon nav-toggle', 'aria-controls': 'nav', 'aria-expanded': 'false', 'aria-label': 'Menu',
    onclick: () => {
      const open = nav.classList.toggle('is-open');
      navToggle.setAttribute('aria-expanded', String(open));
    },
  }, icon('menu'));
  const connText = h('span', { class: 'conn-text' });
  const connId = h('code', { class: 'conn-id', 'data-testid': 'conn-client-id' });
  const conn = h('div', { class: 'conn', role: 'status', 'data-testid': 'conn-status', 'aria-live': 'polite' }, h('span', { class: 'conn-dot', 'aria-hidden': 'true' }), connText, connId);
  const themeButton = h('button', { type: 'button', class: 'btn btn-ghost btn-icon', onclick: () => { toggleTheme(); updateThemeButton(); } });
  const updateThemeButton = () => {
    const dark = currentTheme() === 'dark';
    themeButton.replaceChildren(icon(dark ? 'sun' : 'moon'));
    themeButton.setAttribute('aria-label', dark ? 'Switch to light theme' : 'Switch to dark theme');
    themeButton.title = themeButton.getAttribute('aria-label');
  };
  updateThemeButton();
  if (window.matchMedia) window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', updateThemeButton);
  const roles = (user.roles || []).join(', ');
  const header = h('header', { class: 'topbar' },
    navToggle,
    h('a', { class: 'brand', href: `#${HOME}` }, h('span', { class: 'brand-mark' }, icon('logo', 20)), h('span', { class: 'brand-name' }, 'Switchboard')),
    conn,
    h('div', { class: 'topbar-right' },
      themeButton,
      h('div', { class: 'user-chip', title: `Signed in as ${user.username} (${roles})` },
        h('span', { class: 'avatar', 'aria-hidden': 'true' }, (user.username || '?').slice(0, 1).toUpperCase()),
        h('span', { class: 'user-meta' }, h('span', { class: 'user-name', 'data-testid': 'user-name' }, user.username), h('span', { class: 'user-roles' }, roles))),
      h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': 'Log out', title: 'Log out', 'data-testid': 'logout', onclick: () => endSession(null, { callServer: true }) }, icon('logout'))));
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const skip = h('a', { class: 'skip-link', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content');
  replace(root, skip, header, h('div', { class: 'layout' }, nav, main));
  app.shell = { main, nav, navToggle, links, connText, connId, conn };
  renderConnStatus();
}

const STATE_TEXT = {
  idle: 'Starting…',
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

function renderConnStatus() {
  if (!app.shell) return;
  const state = app.conn.state;
  const { conn, connText, connId } = app.shell;
  // Only touch what changed: the pill is a live region, and rewriting it re-announces it.
  if (conn.dataset.state !== state) conn.dataset.state = state;
  const text = STATE_TEXT[state] || state;
  if (connText.textContent !== text) connText.textContent = text;
  const id = app.socket && app.socket.clientId ? String(app.socket.clientId) : '';
  if (connId.textContent !== id) connId.textContent = id;
  connId.hidden = !id;
}

// ------------------------------------------------------------------ start

applyStoredTheme();
window.addEventListener('hashchange', route);
if (app.session) {
  startSocket();
  // Refresh the user (roles may have changed); a 401 here ends the session.
  app.api.me().then((me) => {
    if (app.session && me && me.username) {
      app.session.user = { ...app.session.user, ...me };
      saveSession(app.session);
    }
  }).catch(() => {});
}
route();
