// Online users: GET /api/websocket/online with filters and paging; kick a connection or a user.

import { h, replace, field, uniqueId } from '../dom.js';
import { pageHeader, card, button, errorBox, parseUserId } from './common.js';
import { formatTime, formatAgo, isoTime, plural } from '../format.js';

const REFRESH_MS = 5000;

export default {
  path: '/online',
  title: 'Online users',
  nav: 'Online users',
  icon: 'users',
  role: 'operator',
  render(main, ctx) {
    const state = { page: 1, pageSize: 20, filters: {}, total: 0, loading: false, seq: 0, auto: true, updatedAt: null };

    // ---- filters
    const inputs = {
      userId: field({ label: 'User ID', control: h('input', { name: 'userId', inputmode: 'numeric', autocomplete: 'off' }) }),
      username: field({ label: 'Username', control: h('input', { name: 'username', autocomplete: 'off' }) }),
      ip: field({ label: 'IP address', control: h('input', { name: 'ip', autocomplete: 'off' }) }),
      tag: field({ label: 'Tag', control: h('input', { name: 'tag', autocomplete: 'off' }) }),
    };
    const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter connections', onsubmit: (e) => { e.preventDefault(); applyFilters(); } },
      Object.values(inputs).map((f) => f.wrapper),
      h('div', { class: 'filter-actions' },
        button('Search', null, { kind: 'primary', type: 'submit' }),
        button('Reset', () => { for (const f of Object.values(inputs)) f.control.value = ''; applyFilters(); }, { kind: 'ghost' })));

    // ---- table
    const tbody = h('tbody');
    const table = h('table', { class: 'table', 'data-testid': 'online-table' },
      h('caption', { class: 'sr-only' }, 'Connections online now'),
      h('thead', null, h('tr', null, ['Client', 'User', 'IP', 'Device', 'Connected', 'Heartbeat', 'Tags', 'Node', ''].map((t) => h('th', { scope: 'col' }, t)))),
      tbody);
    // Not a live region: it changes with every auto-refresh and would be announced every 5 s.
    const status = h('p', { class: 'muted small', 'data-testid': 'online-status' });
    const errorSlot = h('div');

    // ---- paging
    const pageInfo = h('span', { class: 'muted small' });
    const prev = button('Previous', () => go(state.page - 1), { kind: 'secondary', class: 'btn btn-secondary btn-sm' });
    const next = button('Next', () => go(state.page + 1), { kind: 'secondary', class: 'btn btn-secondary btn-sm' });
    const sizeSelect = h('select', { onchange: () => { state.pageSize = Number(sizeSelect.value); go(1); } },
      [10, 20, 50, 100, 200].map((n) => h('option', { value: String(n), selected: n === state.pageSize }, String(n))));
    const sizeId = uniqueId('page-size');
    sizeSelect.id = sizeId;
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, pageInfo,
      h('span', { class: 'pager-size' }, h('label', { for: sizeId }, 'Per page'), sizeSelect), prev, next);

    const autoBox = h('input', { type: 'checkbox', checked: state.auto, onchange: () => { state.auto = autoBox.checked; } });
    const autoLabel = h('label', { class: 'check' }, autoBox, `Auto-refresh every ${REFRESH_MS / 1000} s`);
    const refreshButton = button('Refresh', () => load(), { kind: 'secondary' });

    main.append(
      pageHeader('Online users', 'Every WebSocket connection, across all nodes. Kick closes it with code 4001.', autoLabel, refreshButton),
      card(null, filterForm),
      card(null, errorSlot, h('div', { class: 'table-wrap' }, table), h('div', { class: 'table-footer' }, status, pager)));

    // ---- kick dialog
    const dialog = buildKickDialog();
    main.append(dialog.el);

    function applyFilters() {
      state.filters = {};
      for (const [k, f] of Object.entries(inputs)) {
        const v = f.control.value.trim();
        if (v) state.filters[k] = v;
      }
      go(1);
    }

    function go(page) {
      const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
      state.page = Math.min(Math.max(1, page), Math.max(pages, 1));
      load();
    }

    async function load() {
      const seq = ++state.seq;
      state.loading = true;
      refreshButton.disabled = true;
      try {
        const result = await ctx.api.online({ page: state.page, pageSize: state.pageSize, ...state.filters });
        if (seq !== state.seq) return;
        replace(errorSlot);
        const list = Array.isArray(result && result.list) ? result.list : [];
        state.total = Number(result && result.total) || 0;
        state.updatedAt = new Date();
        renderRows(list);
        renderPager(list.length);
      } catch (err) {
        if (seq !== state.seq) return;
        replace(errorSlot, errorBox(err));
      } finally {
        if (seq === state.seq) {
          state.loading = false;
          refreshButton.disabled = false;
        }
      }
    }

    function renderRows(list) {
      const myId = ctx.socket && ctx.socket.clientId;
      if (list.length === 0) {
        replace(tbody, h('tr', null, h('td', { colspan: '9', class: 'empty' }, Object.keys(state.filters).length ? 'No connections match these filters.' : 'Nobody is online.')));
        return;
      }
      replace(tbody, list.map((c) => {
        const mine = myId !== null && String(c.id) === String(myId);
        const anonymous = c.userId === null || c.userId === undefined || (c.userId === 0 && !c.username);
        const device = [c.os, c.browser].filter(Boolean).join(' · ') || '—';
        const tags = Array.isArray(c.tags) ? c.tags : [];
        return h('tr', { dataset: { clientId: String(c.id), userId: String(c.userId ?? '') }, class: mine ? 'is-mine' : null },
          h('td', null, h('code', null, String(c.id)), mine ? h('span', { class: 'badge badge-accent', title: 'This browser tab' }, 'you') : null),
          h('td', null, anonymous ? h('span', { class: 'muted' }, 'anonymous') : [h('span', null, c.username || '—'), h('span', { class: 'muted small' }, ` #${c.userId}`)]),
          h('td', null, c.ip || '—'),
          h('td', { class: 'wrap', title: c.userAgent || '' }, device),
          h('td', null, h('time', { datetime: isoTime(c.firstTime), title: isoTime(c.firstTime) }, formatTime(c.firstTime))),
          h('td', null, h('time', { datetime: isoTime(c.heartbeatTime), title: isoTime(c.heartbeatTime) }, formatAgo(c.heartbeatTime) || '—')),
          h('td', { class: 'wrap' }, tags.length ? h('span', { class: 'chips' }, tags.map((t) => h('span', { class: 'chip' }, t))) : h('span', { class: 'muted' }, '—')),
          h('td', null, c.node || '—'),
          h('td', { class: 'cell-actions' }, button('Kick', () => dialog.open(c, mine), { kind: 'danger', class: 'btn btn-danger btn-sm', 'data-testid': 'kick', 'aria-label': `Kick connection ${c.id}${c.username ? ` of ${c.username}` : ''}` })));
      }));
    }

    function renderPager(shown) {
      const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
      const from = state.total === 0 ? 0 : (state.page - 1) * state.pageSize + 1;
      const to = state.total === 0 ? 0 : from + shown - 1;
      pageInfo.textContent = `Page ${state.page} of ${pages}`;
      status.textContent = `${from}–${to} of ${plural(state.total, 'connection')} · updated ${formatTime(state.updatedAt)}`;
      prev.disabled = state.page <= 1;
      next.disabled = state.page >= pages;
    }

    function buildKickDialog() {
      const title = h('h2', { id: uniqueId('kick-title') });
      const scopeName = uniqueId('scope');
      const scopeClient = h('input', { type: 'radio', name: scopeName, value: 'client', checked: true });
      const scopeUser = h('input', { type: 'radio', name: scopeName, value: 'user' });
      const scopeUserLabel = h('span');
      const scope = h('fieldset', { class: 'radios' }, h('legend', null, 'Close'),
        h('label', { class: 'check' }, scopeClient, 'this connection only'),
        h('label', { class: 'check' }, scopeUser, scopeUserLabel));
      const reason = field({ label: 'Reason', control: h('input', { name: 'reason', maxlength: '200', placeholder: 'e.g. maintenance', autocomplete: 'off' }), hint: 'Shown to the user before the connection closes.' });
      const revoke = h('input', { type: 'checkbox', name: 'revoke' });
      const selfWarning = h('div', { class: 'alert alert-warning', hidden: true }, 'This is your own connection: you will be logged out.');
      const errorLine = h('div');
      const confirm = button('Kick', null, { kind: 'danger', type: 'submit', 'data-testid': 'kick-confirm' });
      const cancel = button('Cancel', () => el.close(), { kind: 'ghost' });
      const form = h('form', { method: 'dialog', onsubmit: submit },
        title, selfWarning, scope, reason.wrapper,
        h('label', { class: 'check' }, revoke, 'Also revoke their tokens (they must log in again)'),
        errorLine,
        h('div', { class: 'dialog-actions' }, cancel, confirm));
      const el = h('dialog', { class: 'dialog', 'aria-labelledby': title.id, 'data-testid': 'kick-dialog' }, form);
      let target = null;

      function open(conn, mine) {
        target = conn;
        title.textContent = `Kick ${conn.username ? conn.username : 'anonymous client'}`;
        scopeClient.checked = true;
        const hasUser = conn.userId !== null && conn.userId !== undefined && conn.userId !== '' && !(conn.userId === 0 && !conn.username);
        scopeUser.disabled = !hasUser;
        scopeUserLabel.textContent = hasUser ? `every connection of user #${conn.userId}` : 'every connection of the user (anonymous: not possible)';
        reason.control.value = '';
        revoke.checked = false;
        revoke.disabled = !hasUser;
        selfWarning.hidden = !mine;
        replace(errorLine);
        confirm.disabled = false;
        el.showModal();
        reason.control.focus();
      }

      async function submit(event) {
        event.preventDefault();
        if (!target) return;
        const body = scopeUser.checked ? { userId: parseUserId(target.userId) } : { clientId: target.id };
        const text = reason.control.value.trim();
        if (text) body.reason = text;
        if (revoke.checked) body.revoke = true;
        confirm.disabled = true;
        try {
          const result = await ctx.api.kick(body);
          el.close();
          const closed = Number(result && result.closed) || 0;
          ctx.toast({ kind: closed ? 'success' : 'warning', title: closed ? 'Kicked' : 'Nobody was kicked', message: `Closed ${plural(closed, 'connection')}.` });
          load();
        } catch (err) {
          replace(errorLine, errorBox(err));
          confirm.disabled = false;
        }
      }

      return { el, open };
    }

    ctx.every(REFRESH_MS, () => {
      if (state.auto && !state.loading && !dialog.el.open && document.visibilityState !== 'hidden') load();
    });
    ctx.onCleanup(() => { if (dialog.el.open) dialog.el.close(); });
    load();
  },
};
