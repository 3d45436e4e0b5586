import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SocketRequestError } from '../../js/socket.js';
import { FakeWebSocket, makeSocket, flush } from './fakes.mjs';

async function connected(options) {
  const ctx = await makeSocket(options);
  ctx.socket.connect();
  ctx.ws = FakeWebSocket.last;
  ctx.ws.accept();
  return ctx;
}

describe('request()', () => {
  test('sends {event, data, seqno} and resolves with the reply frame', async () => {
    const { socket, ws } = await connected();
    const p = socket.request('admin/addons/hgexample/testMessage', { hello: 'world' });
    const sent = ws.sent.at(-1);
    assert.equal(sent.event, 'admin/addons/hgexample/testMessage');
    assert.deepEqual(sent.data, { hello: 'world' });
    assert.ok(sent.seqno !== undefined);
    ws.push({ event: sent.event, data: { hello: 'world' }, code: 0, seqno: sent.seqno, timestamp: 5 });
    const reply = await p;
    assert.deepEqual(reply.data, { hello: 'world' });
    assert.equal(reply.timestamp, 5);
    socket.close();
  });

  test('data is left out when not given', async () => {
    const { socket, ws } = await connected();
    const p = socket.request('ping');
    assert.deepEqual(Object.keys(ws.sent.at(-1)).sort(), ['event', 'seqno']);
    ws.reply('ping');
    await p;
    socket.close();
  });

  test('every request gets its own seqno', async () => {
    const { socket, ws } = await connected();
    const ps = Array.from({ length: 50 }, (_, i) => socket.request('e', i));
    const seqnos = ws.sent.map((f) => f.seqno);
    assert.equal(new Set(seqnos).size, 50);
    for (const f of ws.sent) ws.push({ event: 'e', data: f.data, code: 0, seqno: f.seqno });
    assert.deepEqual((await Promise.all(ps)).map((r) => r.data), [...Array(50).keys()]);
    socket.close();
  });

  test('out-of-order replies reach the right callers', async () => {
    const { socket, ws } = await connected();
    const a = socket.request('join', { id: 'a' });
    const b = socket.request('join', { id: 'b' });
    const c = socket.request('ping');
    const [fa, fb, fc] = ws.sent;
    ws.push({ event: 'ping', code: 0, seqno: fc.seqno });
    ws.push({ event: 'join', data: ['b'], code: 0, seqno: fb.seqno });
    ws.push({ event: 'join', data: ['a', 'b'], code: 0, seqno: fa.seqno });
    assert.deepEqual((await a).data, ['a', 'b']);
    assert.deepEqual((await b).data, ['b']);
    assert.equal((await c).event, 'ping');
    socket.close();
  });

  test('a numeric seqno echoed by the server still matches', async () => {
    const { socket, ws } = await connected();
    const p = socket.request('ping');
    ws.push({ event: 'ping', code: 0, seqno: Number(ws.sent.at(-1).seqno) });
    await p;
    socket.close();
  });

  test('a non-zero code rejects with code and errorMsg', async () => {
    const { socket, ws } = await connected();
    const p = socket.request('join', { id: 'sys:x' });
    ws.push({ event: 'join', code: 403, errorMsg: 'sys: tags are server-only', seqno: ws.sent.at(-1).seqno });
    await assert.rejects(p, (err) => {
      assert.ok(err instanceof SocketRequestError);
      assert.equal(err.code, 403);
      assert.equal(err.errorMsg, 'sys: tags are server-only');
      assert.equal(err.message, 'sys: tags are server-only');
      assert.equal(err.frame.event, 'join');
      return true;
    });
    const q = socket.request('admin/addons/hgexample/fail');
    ws.push({ event: 'admin/addons/hgexample/fail', code: -1, seqno: ws.sent.at(-1).seqno });
    await assert.rejects(q, (err) => err.code === -1 && /code -1/.test(err.message));
    socket.close();
  });

  test('times out, and a late reply is then ignored', async () => {
    const { socket, ws, clock } = await connected();
    const p = socket.request('slow', null, { timeout: 2000 });
    clock.advance(1999);
    let settled = false;
    p.catch(() => {}).finally(() => { settled = true; });
    await flush();
    assert.equal(settled, false);
    clock.advance(1);
    await assert.rejects(p, (err) => err.code === 'timeout');
    ws.reply('slow'); // late: must not throw or resolve anything
    socket.close();
  });

  test('the default timeout is requestTimeout', async () => {
    const { socket, clock } = await connected({ requestTimeout: 300 });
    const p = socket.request('slow');
    clock.advance(300);
    await assert.rejects(p, (err) => err.code === 'timeout');
    socket.close();
  });

  test('one timeout does not disturb other requests', async () => {
    const { socket, ws, clock } = await connected();
    const slow = socket.request('slow', null, { timeout: 100 });
    const fast = socket.request('fast', null, { timeout: 5000 });
    clock.advance(100);
    await assert.rejects(slow, (err) => err.code === 'timeout');
    ws.reply('fast');
    assert.equal((await fast).event, 'fast');
    socket.close();
  });

  test('rejects at once when not connected', async () => {
    const { socket } = await makeSocket();
    await assert.rejects(socket.request('ping'), (err) => err.code === 'not_connected');
    socket.connect(); // connecting, not open yet
    await assert.rejects(socket.request('ping'), (err) => err.code === 'not_connected');
    socket.close();
  });

  test('pending requests are rejected when the connection drops, and their timers cleared', async () => {
    const { socket, ws, clock } = await connected();
    const p = socket.request('slow', null, { timeout: 60000 });
    ws.serverClose(1006);
    await assert.rejects(p, (err) => err.code === 'connection_closed');
    assert.deepEqual(clock.pendingDelays().length, 1, 'only the reconnect timer is left');
    socket.close();
  });

  test('replies are dispatched to listeners too, after the promise is settled', async () => {
    const { socket, ws } = await connected();
    const seen = [];
    socket.on('*', (f) => seen.push(f.event));
    const p = socket.request('join', { id: 't' });
    ws.reply('join', { data: ['t'] });
    await p;
    assert.deepEqual(seen, ['join']);
    socket.close();
  });

  test('send() fires and forgets, and says whether it could', async () => {
    const { socket } = await makeSocket();
    assert.equal(socket.send('x', 1), false);
    socket.connect();
    FakeWebSocket.last.accept();
    assert.equal(socket.send('publish', { tag: 't', data: 1 }), true);
    assert.deepEqual(FakeWebSocket.last.sent.at(-1), { event: 'publish', data: { tag: 't', data: 1 } });
    socket.close();
  });

  test('join()/quit() keep the tag list the server reports', async () => {
    const { socket, ws, events } = await connected();
    const j = socket.join('room-1');
    assert.deepEqual(ws.sent.at(-1).data, { id: 'room-1' });
    ws.reply('join', { data: ['room-1'] });
    assert.deepEqual(await j, ['room-1']);
    assert.deepEqual(socket.tags, ['room-1']);
    const q = socket.quit('room-1');
    ws.reply('quit', { data: [] });
    assert.deepEqual(await q, []);
    assert.deepEqual(events.filter((e) => e.name === 'tags').map((e) => e.tags), [['room-1'], []], 'a tags event per change');
    socket.close();
  });

  test('a frame named like a client event (tags) reaches * but not the client event', async () => {
    const { socket, ws, events } = await connected();
    const frames = [];
    socket.on('*', (f) => frames.push(f.event));
    ws.push({ event: 'tags', data: ['spoof'], code: 0 });
    assert.deepEqual(frames, ['tags'], '* still sees the frame');
    assert.equal(events.filter((e) => e.name === 'tags').length, 0);
    socket.close();
  });
});

describe('heartbeat', () => {
  test('pings at the server pingInterval, bounded by half the idleTimeout, and reports latency', async () => {
    const { socket, clock, events } = await makeSocket({ heartbeatInterval: undefined });
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept({ pingInterval: 25, idleTimeout: 30 });
    clock.advance(14999);
    assert.equal(ws.sentOf('ping').length, 0);
    clock.advance(1);
    assert.equal(ws.sentOf('ping').length, 1);
    clock.advance(42);
    ws.reply('ping');
    await flush();
    assert.equal(events.filter((e) => e.name === 'latency').at(-1).rtt, 42);
    assert.equal(socket.latency, 42);
    clock.advance(15000);
    assert.equal(ws.sentOf('ping').length, 2, 'the next beat follows the reply');
    socket.close();
  });

  test('an unanswered heartbeat replaces the connection', async () => {
    const { socket, clock, events } = await makeSocket({ heartbeatInterval: 1000, heartbeatTimeout: 500 });
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    clock.advance(1000);
    assert.equal(ws.sentOf('ping').length, 1);
    clock.advance(500);
    await flush();
    assert.equal(ws.closedWith.code, 4000);
    const r = events.find((e) => e.name === 'reconnecting');
    assert.equal(r.code, 4000);
    clock.advance(r.delay);
    assert.equal(FakeWebSocket.instances.length, 2);
    socket.close();
  });

  test('ping() measures one round trip on demand', async () => {
    const { socket, clock } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept();
    const p = socket.ping();
    clock.advance(7);
    FakeWebSocket.last.reply('ping');
    assert.equal(await p, 7);
    socket.close();
  });
});
