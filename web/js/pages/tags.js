// Tags: every tag with its member count (GET /api/websocket/tags), and join/quit for this tab's own
// connection through the WebSocket `join` / `quit` events.

import { h, replace, field, setHint } from '../dom.js';
import { pageHeader, card, button, errorBox, TAG_PATTERN } from './common.js';
import { formatTime } from '../format.js';

const REFRESH_MS = 5000;

export default {
  path: '/tags',
  title: 'Tags',
  nav: 'Tags',
  icon: 'tag',
  role: 'operator',
  render(main, ctx) {
    let seq = 0;

    const tagInput = field({ label: 'Tag name', control: h('input', { name: 'tag', autocomplete: 'off', placeholder: 'e.g. room-1', 'data-testid': 'join-tag' }), hint: '1–64 characters: letters, digits and _ . : / -' });
    const joinForm = h('form', { class: 'inline-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); join(tagInput.control.value.trim()); } },
      tagInput.wrapper, button('Join', null, { kind: 'primary', type: 'submit', 'data-testid': 'join-submit' }));
    const myTags = h('div', { class: 'chips chips-lg', 'data-testid': 'my-tags', 'aria-live': 'polite' });

    const tbody = h('tbody');
    const table = h('table', { class: 'table', 'data-testid': 'tags-table' },
      h('caption', { class: 'sr-only' }, 'All tags with their member counts'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col', class: 'num' }, 'Members'), h('th', { scope: 'col' }, 'This tab'))),
      tbody);
    const status = h('p', { class: 'muted small' });
    const errorSlot = h('div');
    let rows = [];

    main.append(
      pageHeader('Tags', 'Groups of connections. Sending to a tag reaches every member.', button('Refresh', () => load(), { kind: 'secondary' })),
      h('div', { class: 'grid-2 grid-wide-right' },
        card('My connection', h('p', { class: 'muted small' }, 'Tags this browser tab has joined. They are joined again after a reconnect.'), myTags, joinForm),
        card('All tags', errorSlot, h('div', { class: 'table-wrap' }, table), status)));

    function renderMine() {
      const tags = ctx.socket ? ctx.socket.tags : [];
      if (tags.length === 0) {
        replace(myTags, h('span', { class: 'muted' }, 'None yet.'));
        return;
      }
      replace(myTags, tags.map((t) => h('span', { class: 'chip chip-removable' }, t,
        h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Quit tag ${t}`, onclick: () => quit(t) }, '×'))));
    }

    function renderTable() {
      const mine = new Set(ctx.socket ? ctx.socket.tags : []);
      if (rows.length === 0) {
        replace(tbody, h('tr', null, h('td', { colspan: '3', class: 'empty' }, 'No tags yet. Join one to create it.')));
        return;
      }
      replace(tbody, rows.map(({ tag, members }) => {
        const joined = mine.has(tag);
        const count = Array.isArray(members) ? members.length : Number(members) || 0;
        return h('tr', { dataset: { tag } },
          h('td', null, h('span', { class: 'chip' }, tag)),
          h('td', { class: 'num', 'data-testid': 'members' }, String(count)),
          h('td', null, tag.startsWith('sys:') ? h('span', { class: 'muted small' }, 'server-assigned')
            : joined ? button('Quit', () => quit(tag), { kind: 'ghost', class: 'btn btn-ghost btn-sm', 'aria-label': `Quit ${tag}` })
              : button('Join', () => join(tag), { kind: 'secondary', class: 'btn btn-secondary btn-sm', 'aria-label': `Join ${tag}` })));
      }));
    }

    async function load() {
      const mySeq = ++seq;
      try {
        const result = await ctx.api.tags();
        if (mySeq !== seq) return;
        rows = (Array.isArray(result) ? result : (result && result.list) || []).slice().sort((a, b) => String(a.tag).localeCompare(String(b.tag)));
        replace(errorSlot);
        status.textContent = `${rows.length} ${rows.length === 1 ? 'tag' : 'tags'} · updated ${formatTime(new Date())}`;
        renderTable();
      } catch (err) {
        if (mySeq === seq) replace(errorSlot, errorBox(err));
      }
    }

    async function join(tag) {
      if (!TAG_PATTERN.test(tag)) {
        setHint(tagInput, 'Tags are 1–64 characters of letters, digits and _ . : / -', true);
        tagInput.control.focus();
        return;
      }
      if (tag.startsWith('sys:')) {
        setHint(tagInput, 'sys: tags can only be assigned by the server.', true);
        return;
      }
      setHint(tagInput, '1–64 characters: letters, digits and _ . : / -');
      await act(() => ctx.socket.join(tag), `Joined ${tag}`);
      tagInput.control.value = '';
    }

    async function quit(tag) {
      await act(() => ctx.socket.quit(tag), `Left ${tag}`);
    }

    async function act(fn, message) {
      if (!ctx.socket || ctx.socket.state !== 'open') {
        ctx.toast({ kind: 'warning', title: 'Not connected', message: 'Wait for the connection to come back and try again.' });
        return;
      }
      try {
        await fn();
        ctx.toast({ kind: 'success', message });
      } catch (err) {
        ctx.toast({ kind: 'error', title: 'Tag change failed', message: err.message });
      }
      renderMine();
      load();
    }

    renderMine();
    ctx.on('connected', () => { renderMine(); load(); });
    ctx.on('tags', () => { renderMine(); renderTable(); });
    ctx.every(REFRESH_MS, () => { if (document.visibilityState !== 'hidden') load(); });
    load();
  },
};
