// API keys (admin): create (the key is shown once, with a copy button), list, revoke. A key
// acts with the operator role, sent as `X-API-Key` by backend services.

import { h, replace, field, uniqueId, setHint } from '../dom.js';
import { pageHeader, card, button, errorBox } from './common.js';
import { formatTime, formatAgo, isoTime, plural } from '../format.js';

export default {
  path: '/apikeys',
  title: 'API keys',
  nav: 'API keys',
  icon: 'key',
  role: 'admin',
  render(main, ctx) {
    const name = field({ label: 'Name', control: h('input', { name: 'name', autocomplete: 'off', maxlength: '64', required: true, placeholder: 'e.g. billing-service' }), hint: 'Letters, digits, _ . @ - (1–64).' });
    const createButton = button('Create key', null, { kind: 'primary', type: 'submit', 'data-testid': 'key-create' });
    const createError = h('div');
    const created = h('div', { 'data-testid': 'key-created', hidden: true });
    const form = h('form', { class: 'inline-form', 'aria-label': 'Create an API key', onsubmit: create }, name.wrapper, createButton);

    const tbody = h('tbody');
    const table = h('table', { class: 'table', 'data-testid': 'keys-table' },
      h('caption', { class: 'sr-only' }, 'API keys'),
      h('thead', null, h('tr', null, ['ID', 'Name', 'Key starts with', 'Created', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
      tbody);
    const status = h('p', { class: 'muted small' });
    const listError = h('div');

    main.append(
      pageHeader('API keys', 'Keys for backend services: sent as X-API-Key, they act with the operator role (send, online list, kick, tags).'),
      card('New key', form, createError, created),
      card(null, listError, h('div', { class: 'table-wrap' }, table), h('div', { class: 'table-footer' }, status)));

    const dialog = buildRevokeDialog();
    main.append(dialog.el);
    ctx.onCleanup(() => { if (dialog.el.open) dialog.el.close(); });

    async function create(event) {
      event.preventDefault();
      setHint(name, 'Letters, digits, _ . @ - (1–64).');
      replace(createError);
      createButton.disabled = true;
      try {
        const key = await ctx.api.createApiKey(name.control.value.trim());
        name.control.value = '';
        showCreated(key);
        await load();
      } catch (err) {
        if (/^name:/.test(err.message)) setHint(name, err.message, true);
        else replace(createError, errorBox(err));
      } finally {
        createButton.disabled = false;
      }
    }

    function showCreated(key) {
      const value = h('code', { 'data-testid': 'key-value' }, key.key);
      const copyNote = h('span', { class: 'muted small', role: 'status' });
      const copy = button('Copy', async () => {
        try {
          await navigator.clipboard.writeText(key.key);
          copyNote.textContent = 'Copied.';
        } catch {
          // Clipboard access can be refused (no secure context, no permission): select the text
          // so the user can copy it by hand.
          const range = document.createRange();
          range.selectNodeContents(value);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          copyNote.textContent = 'Selected: press Ctrl+C to copy.';
        }
      }, { class: 'btn btn-secondary btn-sm', 'data-testid': 'key-copy' });
      replace(created,
        h('div', { class: 'alert alert-warning' }, h('p', { class: 'alert-title' }, `Key “${key.name}” created`), h('p', null, 'Copy it now: it is shown only this once and cannot be retrieved later.')),
        h('div', { class: 'key-box' }, value, copy, copyNote));
      created.hidden = false;
    }

    async function load() {
      try {
        const keys = await ctx.api.apiKeys();
        replace(listError);
        const list = Array.isArray(keys) ? keys : [];
        status.textContent = plural(list.length, 'key');
        if (!list.length) {
          replace(tbody, h('tr', null, h('td', { colspan: '6', class: 'empty' }, 'No API keys yet.')));
          return;
        }
        replace(tbody, list.map((k) => h('tr', { dataset: { keyName: k.name } },
          h('td', null, h('code', null, String(k.id))),
          h('td', null, k.name),
          h('td', null, h('code', null, `${k.prefix}…`)),
          h('td', null, h('time', { datetime: isoTime(k.createdAt), title: isoTime(k.createdAt) }, formatTime(k.createdAt))),
          h('td', { 'data-testid': 'key-last-used' }, k.lastUsedAt ? h('time', { datetime: isoTime(k.lastUsedAt), title: isoTime(k.lastUsedAt) }, formatAgo(k.lastUsedAt)) : h('span', { class: 'muted' }, 'never')),
          h('td', { class: 'cell-actions' }, button('Revoke', () => dialog.open(k), { class: 'btn btn-danger btn-sm', 'aria-label': `Revoke ${k.name}` })))));
      } catch (err) {
        replace(listError, errorBox(err));
      }
    }

    function buildRevokeDialog() {
      const title = h('h2', { id: uniqueId('revoke-title') });
      const errorLine = h('div');
      const confirm = button('Revoke', null, { kind: 'danger', type: 'submit', 'data-testid': 'key-revoke-confirm' });
      let target = null;
      const form = h('form', { method: 'dialog', onsubmit: async (e) => {
        e.preventDefault();
        confirm.disabled = true;
        try {
          await ctx.api.revokeApiKey(target.id);
          el.close();
          ctx.toast({ kind: 'success', title: 'Key revoked', message: `${target.name} no longer works.` });
          await load();
        } catch (err) {
          replace(errorLine, errorBox(err));
        } finally {
          confirm.disabled = false;
        }
      } }, title, h('p', null, 'Services using this key get 401 from now on.'), errorLine,
      h('div', { class: 'dialog-actions' }, button('Cancel', () => el.close(), { kind: 'ghost' }), confirm));
      const el = h('dialog', { class: 'dialog', 'aria-labelledby': title.id }, form);
      return {
        el,
        open(k) {
          target = k;
          title.textContent = `Revoke ${k.name}?`;
          replace(errorLine);
          el.showModal();
        },
      };
    }

    load();
  },
};
