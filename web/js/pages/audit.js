// Audit log (admin): GET /api/audit with filters (actor, action, time range) and paging.

import { h, replace, field, uniqueId } from '../dom.js';
import { pageHeader, card, button, errorBox } from './common.js';
import { formatTime, isoTime, plural } from '../format.js';

const ACTIONS = ['send', 'kick', 'tag.join', 'tag.quit', 'login', 'user.create', 'user.update', 'user.delete', 'apikey.create', 'apikey.revoke'];

/** `datetime-local` value → unix seconds (local time), or undefined when empty. */
function toUnix(value) {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

export default {
  path: '/audit',
  title: 'Audit log',
  nav: 'Audit log',
  icon: 'shield',
  role: 'admin',
  render(main, ctx) {
    const state = { page: 1, pageSize: 20, filters: {}, total: 0, seq: 0 };

    const inputs = {
      actor: field({ label: 'Actor', control: h('input', { name: 'actor', autocomplete: 'off', placeholder: 'username or apikey:name' }) }),
      action: field({ label: 'Action', control: h('select', { name: 'action' }, h('option', { value: '' }, 'any'), ACTIONS.map((a) => h('option', { value: a }, a))) }),
      from: field({ label: 'From', control: h('input', { name: 'from', type: 'datetime-local', step: '1' }) }),
      to: field({ label: 'To', control: h('input', { name: 'to', type: 'datetime-local', step: '1' }) }),
    };
    const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log', onsubmit: (e) => { e.preventDefault(); apply(); } },
      Object.values(inputs).map((f) => f.wrapper),
      h('div', { class: 'filter-actions' },
        button('Search', null, { kind: 'primary', type: 'submit' }),
        button('Reset', () => { for (const f of Object.values(inputs)) f.control.value = ''; apply(); }, { kind: 'ghost' })));

    const tbody = h('tbody');
    const table = h('table', { class: 'table', 'data-testid': 'audit-table' },
      h('caption', { class: 'sr-only' }, 'Audited actions, newest first'),
      h('thead', null, h('tr', null, ['Time', 'Actor', 'Action', 'Target', 'Detail', 'Result', 'Count', 'IP'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody);
    const status = h('p', { class: 'muted small', 'data-testid': 'audit-status' });
    const errorSlot = h('div');
    const pageInfo = h('span', { class: 'muted small' });
    const prev = button('Previous', () => go(state.page - 1), { class: 'btn btn-secondary btn-sm' });
    const next = button('Next', () => go(state.page + 1), { class: 'btn btn-secondary btn-sm' });
    const sizeSelect = h('select', { onchange: () => { state.pageSize = Number(sizeSelect.value); go(1); } },
      [20, 50, 100, 200].map((n) => h('option', { value: String(n), selected: n === state.pageSize }, String(n))));
    sizeSelect.id = uniqueId('audit-size');
    const refresh = button('Refresh', () => load(), { kind: 'secondary' });

    main.append(
      pageHeader('Audit log', 'Sends, kicks and tag changes made through the API, logins (and failed ones), user and API-key changes — newest first.', refresh),
      card(null, filterForm),
      card(null, errorSlot, h('div', { class: 'table-wrap' }, table),
        h('div', { class: 'table-footer' }, status,
          h('nav', { class: 'pager', 'aria-label': 'Pages' }, pageInfo,
            h('span', { class: 'pager-size' }, h('label', { for: sizeSelect.id }, 'Per page'), sizeSelect), prev, next))));

    function apply() {
      const f = {};
      const actor = inputs.actor.control.value.trim();
      if (actor) f.actor = actor;
      if (inputs.action.control.value) f.action = inputs.action.control.value;
      const from = toUnix(inputs.from.control.value);
      const to = toUnix(inputs.to.control.value);
      if (from !== undefined) f.from = from;
      if (to !== undefined) f.to = to;
      state.filters = f;
      go(1);
    }

    function go(page) {
      const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
      state.page = Math.min(Math.max(1, page), pages);
      load();
    }

    async function load() {
      const seq = ++state.seq;
      refresh.disabled = true;
      try {
        const result = await ctx.api.audit({ page: state.page, pageSize: state.pageSize, ...state.filters });
        if (seq !== state.seq) return;
        replace(errorSlot);
        state.total = Number(result.total) || 0;
        const list = Array.isArray(result.list) ? result.list : [];
        render(list);
      } catch (err) {
        if (seq === state.seq) replace(errorSlot, errorBox(err));
      } finally {
        if (seq === state.seq) refresh.disabled = false;
      }
    }

    function render(list) {
      if (!list.length) {
        replace(tbody, h('tr', null, h('td', { colspan: '8', class: 'empty' }, Object.keys(state.filters).length ? 'No records match these filters.' : 'Nothing recorded yet.')));
      } else {
        replace(tbody, list.map((r) => h('tr', { dataset: { action: r.action, actor: r.actor, id: String(r.id) } },
          h('td', null, h('time', { datetime: isoTime(r.at), title: isoTime(r.at) }, formatTime(r.at))),
          h('td', null, r.actor || '—'),
          h('td', null, h('code', null, r.action)),
          h('td', null, r.target ? h('code', null, r.target) : '—'),
          h('td', { class: 'wrap' }, r.detail || '—'),
          h('td', null, r.result === 'ok' ? h('span', { class: 'badge badge-success' }, 'ok') : h('span', { class: 'badge' }, r.result)),
          h('td', { class: 'num' }, String(r.count)),
          h('td', null, r.ip || '—'))));
      }
      const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
      pageInfo.textContent = `Page ${state.page} of ${pages}`;
      const from = state.total === 0 ? 0 : (state.page - 1) * state.pageSize + 1;
      status.textContent = `${from}–${from + list.length - (list.length ? 1 : 0)} of ${plural(state.total, 'record')}`;
      prev.disabled = state.page <= 1;
      next.disabled = state.page >= pages;
    }

    load();
  },
};
