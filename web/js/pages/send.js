// Send: push an event to everyone, a user (all devices), one connection or a tag, through the HTTP
// API, and show how many connections it reached.

import { h, replace, field, setHint, uniqueId } from '../dom.js';
import { pageHeader, card, button, errorBox, parseUserId, TAG_PATTERN } from './common.js';
import { parseJsonInput, jsonKind, prettyJson, plural, formatTime } from '../format.js';

const TARGETS = [
  { id: 'all', label: 'Everyone', endpoint: 'toAll', input: null },
  { id: 'user', label: 'User', endpoint: 'toUser', input: { key: 'userId', label: 'User ID', hint: 'Every device of this user.', mine: 'Me' } },
  { id: 'client', label: 'Connection', endpoint: 'toClient', input: { key: 'clientId', label: 'Client ID', hint: 'One connection (see Online users).', mine: 'This tab' } },
  { id: 'tag', label: 'Tag', endpoint: 'toTag', input: { key: 'tag', label: 'Tag', hint: 'Every connection that joined the tag.' } },
];

const EXAMPLE = { title: 'Hello', message: 'Sent from the Switchboard admin panel' };

export default {
  path: '/send',
  title: 'Send a message',
  nav: 'Send',
  icon: 'send',
  role: 'operator',
  render(main, ctx) {
    let target = TARGETS[1];
    const history = [];

    const radioName = uniqueId('target');
    const radios = TARGETS.map((t) => h('label', { class: 'segment' },
      h('input', { type: 'radio', name: radioName, value: t.id, checked: t === target, onchange: () => { target = t; updateTarget(); } }),
      h('span', null, t.label)));
    const targetGroup = h('fieldset', { class: 'segmented' }, h('legend', null, 'Send to'), radios);

    const targetValue = field({ label: 'User ID', control: h('input', { name: 'target', autocomplete: 'off', 'data-testid': 'target-value' }) });
    const mineButton = button('Me', fillMine, { kind: 'ghost', class: 'btn btn-ghost btn-sm' });
    const targetRow = h('div', { class: 'field-with-action' }, targetValue.wrapper, mineButton);

    const listId = uniqueId('events');
    const eventName = field({ label: 'Event', control: h('input', { name: 'event', value: 'notice', list: listId, autocomplete: 'off', required: true, 'data-testid': 'event-name' }), hint: 'notice shows a toast in the panel.' });
    const eventList = h('datalist', { id: listId }, ['notice', 'admin/addons/hgexample/testMessage'].map((v) => h('option', { value: v })));

    const dataEditor = field({
      label: 'Data (JSON)',
      control: h('textarea', { name: 'data', rows: '7', spellcheck: 'false', class: 'code-input', 'data-testid': 'data-editor' }),
    });
    dataEditor.control.value = prettyJson(EXAMPLE);
    dataEditor.control.addEventListener('input', validateData);
    dataEditor.control.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });

    const submit = button('Send', null, { kind: 'primary', type: 'submit', 'data-testid': 'send-submit' });
    const result = h('div', { class: 'send-result', role: 'status', 'aria-live': 'polite', 'data-testid': 'send-result' });
    const form = h('form', { class: 'stack', novalidate: true, onsubmit: onSubmit },
      targetGroup, targetRow, eventName.wrapper, eventList, dataEditor.wrapper,
      h('div', { class: 'form-actions' },
        button('Format', formatData, { kind: 'ghost' }),
        h('span', { class: 'muted small' }, 'Ctrl+Enter sends'),
        submit));

    const historyList = h('ul', { class: 'history', 'data-testid': 'send-history' });
    const historyEmpty = h('p', { class: 'empty' }, 'Nothing sent yet.');

    main.append(
      pageHeader('Send a message', 'Push an event through the HTTP API (POST /api/websocket/send/…). Recipients get the data exactly as written.'),
      h('div', { class: 'grid-2 grid-wide-left' },
        card('Message', form),
        h('div', { class: 'stack' }, card('Result', result), card('Recent sends', historyEmpty, historyList))));
    replace(result, h('p', { class: 'muted' }, 'The number of connections reached appears here.'));

    updateTarget();
    validateData();

    function updateTarget() {
      const input = target.input;
      targetRow.hidden = !input;
      if (input) {
        targetValue.wrapper.querySelector('label').textContent = input.label;
        targetValue.control.placeholder = input.key === 'tag' ? 'e.g. room-1' : '';
        setHint(targetValue, input.hint);
        mineButton.hidden = !input.mine;
        mineButton.textContent = input.mine || '';
        mineButton.setAttribute('aria-label', input.key === 'userId' ? 'Fill in my user ID' : 'Fill in the client ID of this tab');
        targetValue.control.value = '';
      }
    }

    function fillMine() {
      if (target.id === 'user') targetValue.control.value = String(ctx.user && ctx.user.id !== undefined ? ctx.user.id : '');
      if (target.id === 'client') targetValue.control.value = String((ctx.socket && ctx.socket.clientId) || '');
      setHint(targetValue, target.input.hint);
      targetValue.control.focus();
    }

    function validateData() {
      const parsed = parseJsonInput(dataEditor.control.value);
      if (!parsed.ok) {
        setHint(dataEditor, `Invalid JSON: ${parsed.error}`, true);
        submit.disabled = true;
      } else {
        setHint(dataEditor, parsed.empty ? 'Empty: the message carries no data.' : `Valid JSON (${jsonKind(parsed.value)}).`);
        submit.disabled = false;
      }
      return parsed;
    }

    function formatData() {
      const parsed = validateData();
      if (parsed.ok && !parsed.empty) dataEditor.control.value = prettyJson(parsed.value);
    }

    async function onSubmit(event) {
      event.preventDefault();
      const parsed = validateData();
      if (!parsed.ok) {
        dataEditor.control.focus();
        return;
      }
      const name = eventName.control.value.trim();
      if (!name) {
        setHint(eventName, 'Enter an event name.', true);
        eventName.control.focus();
        return;
      }
      setHint(eventName, 'notice shows a toast in the panel.');
      const body = { event: name };
      if (!parsed.empty) body.data = parsed.value;
      let targetText = 'everyone';
      if (target.input) {
        const raw = targetValue.control.value.trim();
        if (!raw) {
          setHint(targetValue, `Enter a ${target.input.label.toLowerCase()}.`, true);
          targetValue.control.focus();
          return;
        }
        if (target.id === 'tag' && !TAG_PATTERN.test(raw)) {
          setHint(targetValue, 'Tags are 1–64 characters of letters, digits and _ . : / -', true);
          targetValue.control.focus();
          return;
        }
        setHint(targetValue, target.input.hint);
        body[target.input.key] = target.id === 'user' ? parseUserId(raw) : raw;
        targetText = `${target.label.toLowerCase()} ${raw}`;
      }
      submit.disabled = true;
      try {
        const reply = await ctx.api.send(target.endpoint, body);
        const delivered = Number(reply && reply.delivered) || 0;
        replace(result,
          h('p', { class: 'result-number', 'data-testid': 'delivered' }, String(delivered)),
          h('p', null, `Delivered to ${plural(delivered, 'connection')} (${name} → ${targetText}).`));
        addHistory({ name, targetText, delivered, ok: true });
      } catch (err) {
        replace(result, errorBox(err));
        addHistory({ name, targetText, error: err.message, ok: false });
      } finally {
        submit.disabled = false;
      }
    }

    function addHistory(item) {
      history.unshift({ ...item, time: new Date() });
      history.splice(8);
      historyEmpty.hidden = true;
      replace(historyList, history.map((x) => h('li', { class: x.ok ? '' : 'is-error' },
        h('time', { class: 'muted small' }, formatTime(x.time)), ' ',
        h('code', null, x.name), ` → ${x.targetText}: `,
        x.ok ? h('strong', null, plural(x.delivered, 'connection')) : h('span', { class: 'text-error' }, x.error))));
    }
  },
};
