// The hgexample addon's test page: send admin/addons/hgexample/testMessage over the socket and show
// the echo; optionally watch the addon's clock pushed to tag hgexample:clock every 3 s.

import { h, replace, field, setHint } from '../dom.js';
import { pageHeader, card, button, errorBox } from './common.js';
import { parseJsonInput, jsonKind, prettyJson, formatTime, toDate, compactJson } from '../format.js';

const EVENT = 'admin/addons/hgexample/testMessage';
const CLOCK_TAG = 'hgexample:clock';

export default {
  path: '/hgexample',
  title: 'hgexample addon',
  nav: 'hgexample',
  icon: 'flask',
  role: null,
  render(main, ctx) {
    const editor = field({ label: 'Data (JSON)', control: h('textarea', { rows: '7', spellcheck: 'false', class: 'code-input', 'data-testid': 'hg-data' }) });
    editor.control.value = prettyJson({ message: 'Hello, hgexample!', n: 1 });
    editor.control.addEventListener('input', validate);
    const sendButton = button('Send testMessage', null, { kind: 'primary', type: 'submit', 'data-testid': 'hg-send' });
    const form = h('form', { class: 'stack', novalidate: true, onsubmit: onSubmit },
      h('p', { class: 'muted small' }, 'Sends ', h('code', null, EVENT), ' as a request over this tab\'s WebSocket; the addon echoes the data back with send_success.'),
      editor.wrapper, h('div', { class: 'form-actions' }, sendButton));
    const reply = h('div', { 'data-testid': 'hg-reply', role: 'status', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'The reply appears here.'));

    const clockValue = h('p', { class: 'clock', 'data-testid': 'hg-clock' }, '—');
    const clockNote = h('p', { class: 'muted small' });
    const clockButton = button('Watch the clock', toggleClock, { kind: 'secondary', 'aria-pressed': 'false', 'data-testid': 'hg-clock-toggle' });

    main.append(
      pageHeader('hgexample addon', 'The example addon shipped with Switchboard: an echo event and a periodic push.'),
      h('div', { class: 'grid-2' },
        card('testMessage', form),
        h('div', { class: 'stack' },
          card('Reply', reply),
          card('Server clock',
            h('p', { class: 'muted small' }, 'The addon pushes the server time every 3 s to the members of tag ', h('code', null, CLOCK_TAG), '.'),
            clockValue, clockNote, clockButton))));

    validate();
    renderClockButton();

    function validate() {
      const parsed = parseJsonInput(editor.control.value);
      if (!parsed.ok) setHint(editor, `Invalid JSON: ${parsed.error}`, true);
      else setHint(editor, parsed.empty ? 'Empty: no data.' : `Valid JSON (${jsonKind(parsed.value)}).`);
      sendButton.disabled = !parsed.ok;
      return parsed;
    }

    async function onSubmit(event) {
      event.preventDefault();
      const parsed = validate();
      if (!parsed.ok) return;
      if (!ctx.socket || ctx.socket.state !== 'open') {
        replace(reply, errorBox('Not connected. Wait for the connection to come back.'));
        return;
      }
      sendButton.disabled = true;
      const started = performance.now();
      try {
        const frame = await ctx.socket.request(EVENT, parsed.empty ? undefined : parsed.value, { timeout: 10000 });
        const ms = Math.round(performance.now() - started);
        replace(reply,
          h('p', { class: 'result-line' }, h('span', { class: 'badge badge-success' }, `code ${frame.code ?? 0}`), ` echoed in ${ms} ms`),
          h('pre', { class: 'code-block', 'data-testid': 'hg-reply-data' }, prettyJson(frame.data ?? null)),
          h('details', null, h('summary', null, 'Whole frame'), h('pre', { class: 'code-block' }, prettyJson(frame))));
      } catch (err) {
        replace(reply, errorBox(err.code !== undefined ? `${err.message} (code ${err.code})` : err));
      } finally {
        sendButton.disabled = false;
      }
    }

    function watching() {
      return !!ctx.socket && ctx.socket.tags.includes(CLOCK_TAG);
    }

    function renderClockButton() {
      const on = watching();
      clockButton.textContent = on ? 'Stop watching' : 'Watch the clock';
      clockButton.setAttribute('aria-pressed', String(on));
      clockNote.textContent = on ? `Joined ${CLOCK_TAG}.` : 'Not watching.';
    }

    async function toggleClock() {
      if (!ctx.socket || ctx.socket.state !== 'open') return;
      try {
        if (watching()) await ctx.socket.quit(CLOCK_TAG);
        else await ctx.socket.join(CLOCK_TAG);
      } catch (err) {
        ctx.toast({ kind: 'error', title: 'Clock', message: err.message });
      }
      renderClockButton();
    }

    ctx.on('*', (frame) => {
      if (frame.seqno !== undefined && frame.seqno !== null) return;
      const fromClock = frame.stream === `tag:${CLOCK_TAG}` || (frame.event && frame.event.startsWith('admin/addons/hgexample') && watching());
      if (!fromClock) return;
      const d = frame.data;
      const time = d && typeof d === 'object' ? (d.unixMillis ?? d.time ?? d.now ?? d.serverTime ?? d.timestamp) : d;
      const when = toDate(time);
      clockValue.textContent = when ? formatTime(when) : compactJson(d, 60);
      const from = d && typeof d === 'object' && d.node ? ` from node ${d.node}` : '';
      clockNote.textContent = `Last push ${formatTime(new Date())}${from} (${frame.event}).`;
    });
    ctx.on('connected', renderClockButton);
  },
};
