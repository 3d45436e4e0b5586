// Users (admin): list with search and paging, create, change roles, enable/disable, reset the
// password, delete. Disabling, a new password and deleting close the user's sockets at once
// (the server does that); the page only says so.

import { h, replace, field, uniqueId, setHint } from '../dom.js';
import { pageHeader, card, button, errorBox } from './common.js';
import { plural } from '../format.js';
import { ROLE_ORDER } from '../session.js';

const PAGE_SIZE = 20;

/** Checkboxes for the three roles; `get()` returns the checked names. */
function roleChecks(checked = []) {
  const boxes = ROLE_ORDER.map((role) => ({ role, box: h('input', { type: 'checkbox', name: 'roles', value: role, checked: checked.includes(role) }) }));
  const el = h('fieldset', { class: 'radios' }, h('legend', null, 'Roles'),
    h('div', { class: 'role-checks' }, boxes.map(({ role, box }) => h('label', { class: 'check' }, box, role))));
  return {
    el,
    get: () => boxes.filter((b) => b.box.checked).map((b) => b.role),
    set: (roles) => { for (const b of boxes) b.box.checked = roles.includes(b.role); },
  };
}

/** A server message names the field first (`roles: …`): show it beside that field. */
function showFieldError(err, fields, fallback) {
  const m = /^([A-Za-z]+):\s/.exec(err && err.message ? err.message : '');
  const target = m && fields[m[1]];
  if (target) setHint(target, err.message, true);
  else replace(fallback, errorBox(err));
}

export default {
  path: '/users',
  title: 'Users',
  nav: 'Users',
  icon: 'userCog',
  role: 'admin',
  render(main, ctx) {
    const state = { all: [], search: '', page: 1 };

    // ---- create
    const username = field({ label: 'Username', control: h('input', { name: 'username', autocomplete: 'off', maxlength: '64', required: true }) });
    const password = field({ label: 'Password', control: h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true }), hint: '8–256 characters.' });
    const roles = roleChecks(['member']);
    const rolesHint = h('p', { class: 'field-hint', hidden: true });
    const createError = h('div');
    const createButton = button('Create user', null, { kind: 'primary', type: 'submit', 'data-testid': 'user-create' });
    const createForm = h('form', { class: 'filters', 'aria-label': 'Create a user', onsubmit: create },
      username.wrapper, password.wrapper, h('div', null, roles.el, rolesHint),
      h('div', { class: 'filter-actions' }, createButton));

    // ---- list
    const searchBox = h('input', { type: 'search', name: 'search', placeholder: 'Search by name or role', autocomplete: 'off', 'aria-label': 'Search users', oninput: () => { state.search = searchBox.value.trim().toLowerCase(); state.page = 1; renderRows(); } });
    const tbody = h('tbody');
    const table = h('table', { class: 'table', 'data-testid': 'users-table' },
      h('caption', { class: 'sr-only' }, 'User accounts'),
      h('thead', null, h('tr', null, ['ID', 'Username', 'Roles', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
      tbody);
    const status = h('p', { class: 'muted small', 'data-testid': 'users-status' });
    const pageInfo = h('span', { class: 'muted small' });
    const prev = button('Previous', () => { state.page -= 1; renderRows(); }, { class: 'btn btn-secondary btn-sm' });
    const next = button('Next', () => { state.page += 1; renderRows(); }, { class: 'btn btn-secondary btn-sm' });
    const listError = h('div');

    main.append(
      pageHeader('Users', 'Accounts that can log in to the panel and hold a WebSocket. Disabling a user or changing their password closes their sockets at once.',
        button('Refresh', () => load(), { kind: 'secondary' })),
      card('New user', createForm, createError),
      card(null, h('div', { class: 'toolbar' }, searchBox), listError,
        h('div', { class: 'table-wrap' }, table),
        h('div', { class: 'table-footer' }, status, h('nav', { class: 'pager', 'aria-label': 'Pages' }, pageInfo, prev, next))));

    const dialog = buildDialog();
    main.append(dialog.el);
    ctx.onCleanup(() => { if (dialog.el.open) dialog.el.close(); });

    async function create(event) {
      event.preventDefault();
      setHint(username, '');
      setHint(password, '8–256 characters.');
      rolesHint.hidden = true;
      replace(createError);
      const picked = roles.get();
      if (!picked.length) {
        rolesHint.textContent = 'Pick at least one role.';
        rolesHint.classList.add('is-error');
        rolesHint.hidden = false;
        return;
      }
      createButton.disabled = true;
      try {
        const user = await ctx.api.createUser({ username: username.control.value.trim(), password: password.control.value, roles: picked });
        ctx.toast({ kind: 'success', title: 'User created', message: `${user.username} (${user.roles.join(', ')})` });
        username.control.value = '';
        password.control.value = '';
        roles.set(['member']);
        await load();
      } catch (err) {
        const rolesField = { hint: rolesHint, control: roles.el };
        showFieldError(err, { username, password, roles: rolesField }, createError);
      } finally {
        createButton.disabled = false;
      }
    }

    async function load() {
      try {
        const list = await ctx.api.users();
        state.all = Array.isArray(list) ? list : [];
        replace(listError);
        renderRows();
      } catch (err) {
        replace(listError, errorBox(err));
      }
    }

    function matches(u) {
      if (!state.search) return true;
      return u.username.toLowerCase().includes(state.search) || (u.roles || []).some((r) => r.includes(state.search));
    }

    function renderRows() {
      const found = state.all.filter(matches);
      const pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
      state.page = Math.min(Math.max(1, state.page), pages);
      const rows = found.slice((state.page - 1) * PAGE_SIZE, state.page * PAGE_SIZE);
      const me = ctx.user && ctx.user.id;
      if (!rows.length) {
        replace(tbody, h('tr', null, h('td', { colspan: '5', class: 'empty' }, state.search ? 'No user matches.' : 'No users.')));
      } else {
        replace(tbody, rows.map((u) => {
          const self = u.id === me;
          return h('tr', { dataset: { username: u.username, userId: String(u.id) } },
            h('td', null, h('code', null, String(u.id))),
            h('td', null, u.username, self ? h('span', { class: 'badge badge-accent' }, 'you') : null),
            h('td', null, h('span', { class: 'chips' }, (u.roles || []).map((r) => h('span', { class: 'chip' }, r)))),
            h('td', null, u.enabled ? h('span', { class: 'badge badge-success' }, 'enabled') : h('span', { class: 'badge' }, 'disabled')),
            h('td', { class: 'cell-actions' },
              button('Roles', () => dialog.roles(u), { class: 'btn btn-secondary btn-sm', 'aria-label': `Change roles of ${u.username}` }),
              ' ',
              button('Password', () => dialog.password(u), { class: 'btn btn-secondary btn-sm', 'aria-label': `Reset password of ${u.username}` }),
              ' ',
              button(u.enabled ? 'Disable' : 'Enable', () => setEnabled(u, !u.enabled), { class: 'btn btn-secondary btn-sm', disabled: self, 'aria-label': `${u.enabled ? 'Disable' : 'Enable'} ${u.username}` }),
              ' ',
              button('Delete', () => dialog.remove(u), { class: 'btn btn-danger btn-sm', disabled: self, 'aria-label': `Delete ${u.username}` })));
        }));
      }
      pageInfo.textContent = `Page ${state.page} of ${pages}`;
      status.textContent = `${plural(found.length, 'user')}${state.search ? ` matching “${state.search}”` : ''}`;
      prev.disabled = state.page <= 1;
      next.disabled = state.page >= pages;
    }

    async function setEnabled(u, enabled) {
      try {
        await ctx.api.updateUser(u.id, { enabled });
        ctx.toast({ kind: 'success', title: enabled ? 'User enabled' : 'User disabled', message: enabled ? `${u.username} may log in again.` : `${u.username} can no longer log in; their sockets were closed.` });
        await load();
      } catch (err) {
        ctx.toast({ kind: 'error', title: 'Not changed', message: err.message });
      }
    }

    function buildDialog() {
      const title = h('h2', { id: uniqueId('user-dialog') });
      const body = h('div');
      const errorLine = h('div');
      const confirm = button('Save', null, { kind: 'primary', type: 'submit', 'data-testid': 'user-dialog-confirm' });
      const cancel = button('Cancel', () => el.close(), { kind: 'ghost' });
      let action = null;
      const form = h('form', { method: 'dialog', onsubmit: async (e) => {
        e.preventDefault();
        if (!action) return;
        confirm.disabled = true;
        replace(errorLine);
        try {
          await action();
          el.close();
          await load();
        } catch (err) {
          replace(errorLine, errorBox(err));
        } finally {
          confirm.disabled = false;
        }
      } }, title, body, errorLine, h('div', { class: 'dialog-actions' }, cancel, confirm));
      const el = h('dialog', { class: 'dialog', 'aria-labelledby': title.id, 'data-testid': 'user-dialog' }, form);

      function open(text, label, kind, content, run) {
        title.textContent = text;
        confirm.textContent = label;
        confirm.className = `btn btn-${kind}`;
        replace(body, content);
        replace(errorLine);
        action = run;
        el.showModal();
      }

      return {
        el,
        roles(u) {
          const checks = roleChecks(u.roles || []);
          open(`Roles of ${u.username}`, 'Save roles', 'primary', checks.el, async () => {
            const picked = checks.get();
            if (!picked.length) throw new Error('Pick at least one role.');
            await ctx.api.updateUser(u.id, { roles: picked });
            ctx.toast({ kind: 'success', title: 'Roles changed', message: `${u.username}: ${picked.join(', ')}` });
          });
        },
        password(u) {
          const pw = field({ label: 'New password', control: h('input', { type: 'password', name: 'new-password', autocomplete: 'new-password', required: true }), hint: 'Their tokens stop working and their sockets close.' });
          open(`New password for ${u.username}`, 'Set password', 'primary', pw.wrapper, async () => {
            await ctx.api.updateUser(u.id, { password: pw.control.value });
            ctx.toast({ kind: 'success', title: 'Password changed', message: `${u.username} must log in again.` });
          });
          pw.control.focus();
        },
        remove(u) {
          open(`Delete ${u.username}?`, 'Delete', 'danger', h('p', null, 'The account is removed and its sockets close. This cannot be undone.'), async () => {
            await ctx.api.deleteUser(u.id);
            ctx.toast({ kind: 'success', title: 'User deleted', message: u.username });
          });
        },
      };
    }

    load();
  },
};
