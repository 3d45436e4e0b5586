import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, makeSocket } from './fakes.mjs';

describe('handshake', () => {
  test('the token travels as a subprotocol, never in the URL', async () => {
    const { socket } = await makeSocket({ token: 'abc.def.ghi' });
    socket.connect();
    const ws = FakeWebSocket.last;
    assert.equal(ws.url, 'ws://switchboard.test/socket');
    assert.deepEqual(ws.protocols, ['switchboard.v1', 'bearer.abc.def.ghi']);
    socket.close();
  });

  test('token and url functions are asked again on every attempt', async () => {
    let n = 0;
    const { socket, clock } = await makeSocket({ token: () => `t${++n}`, url: () => `ws://h${n}/socket` });
    socket.connect();
    FakeWebSocket.last.serverClose(1006);
    clock.advance(60000);
    assert.deepEqual(FakeWebSocket.instances.map((w) => w.protocols[1]), ['bearer.t1', 'bearer.t2']);
    assert.deepEqual(FakeWebSocket.instances.map((w) => w.url), ['ws://h1/socket', 'ws://h2/socket']);
    socket.close();
  });

  test('without a token only switchboard.v1 is offered', async () => {
    const { socket } = await makeSocket({ token: null });
    socket.connect();
    assert.deepEqual(FakeWebSocket.last.protocols, ['switchboard.v1']);
    socket.close();
  });
});

describe('states and close codes', () => {
  test('connecting → open with the client id from the greeting', async () => {
    const { socket, events } = await makeSocket();
    let greeting = null;
    socket.on('connected', (f) => { greeting = f.data; });
    socket.connect();
    assert.equal(socket.state, 'connecting');
    assert.equal(socket.clientId, null);
    FakeWebSocket.last.accept({ id: 'abc123' });
    assert.equal(socket.state, 'open');
    assert.equal(socket.clientId, 'abc123');
    assert.equal(greeting.id, 'abc123');
    assert.deepEqual(events.filter((e) => e.name === 'state').map((e) => e.state), ['connecting', 'open']);
    socket.close();
  });

  for (const code of [4001, 4003]) {
    test(`close ${code} stops for good: no reconnect, a terminal closed event`, async () => {
      const { socket, clock, events } = await makeSocket();
      socket.connect();
      const ws = FakeWebSocket.last;
      ws.accept();
      if (code === 4001) ws.push({ event: 'kick', data: { reason: 'maintenance' }, code: 0 });
      ws.serverClose(code, code === 4001 ? 'kicked' : 'token revoked');
      clock.advance(10 * 60 * 1000);
      assert.equal(FakeWebSocket.instances.length, 1, 'no new connection attempt');
      assert.equal(socket.state, 'closed');
      assert.equal(events.filter((e) => e.name === 'reconnecting').length, 0);
      const closed = events.filter((e) => e.name === 'closed');
      assert.equal(closed.length, 1);
      assert.equal(closed[0].code, code);
      assert.equal(closed[0].terminal, true);
      assert.equal(closed[0].kickReason, code === 4001 ? 'maintenance' : null);
      assert.deepEqual(clock.pendingDelays(), [], 'no timer left behind');
    });
  }

  for (const code of [1000, 1001, 1006, 1009, 1011, 4008, 4009, 4029]) {
    test(`close ${code} reconnects`, async () => {
      const { socket, clock, events } = await makeSocket();
      socket.connect();
      FakeWebSocket.last.accept();
      FakeWebSocket.last.serverClose(code);
      assert.equal(socket.state, 'reconnecting');
      const r = events.find((e) => e.name === 'reconnecting');
      assert.equal(r.code, code);
      clock.advance(r.delay);
      assert.equal(FakeWebSocket.instances.length, 2);
      FakeWebSocket.last.accept({ id: 'second' });
      assert.equal(socket.state, 'open');
      assert.equal(socket.clientId, 'second');
      socket.close();
    });
  }

  test('a handshake that keeps failing keeps retrying, spaced out', async () => {
    const { socket, clock, events } = await makeSocket({ random: () => 0 });
    socket.connect();
    for (let i = 0; i < 20; i++) {
      FakeWebSocket.last.serverClose(1006);
      clock.advance(events.filter((e) => e.name === 'reconnecting').at(-1).delay);
    }
    assert.equal(FakeWebSocket.instances.length, 21);
    assert.ok(events.filter((e) => e.name === 'reconnecting').every((e) => e.delay >= 250));
    socket.close();
  });

  test('close() stops reconnecting and closes the transport with 1000', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    socket.close();
    assert.equal(ws.closedWith.code, 1000);
    assert.equal(socket.state, 'closed');
    const closed = events.filter((e) => e.name === 'closed');
    assert.equal(closed.length, 1);
    assert.equal(closed[0].terminal, false);
    ws.serverClose(1000); // the late close event of the old transport is ignored
    clock.advance(60000);
    assert.equal(FakeWebSocket.instances.length, 1);
  });

  test('connect() is idempotent while connecting or open', async () => {
    const { socket } = await makeSocket();
    socket.connect();
    socket.connect();
    FakeWebSocket.last.accept();
    socket.connect();
    assert.equal(FakeWebSocket.instances.length, 1);
    socket.close();
  });

  test('a throwing handler does not break the others', async () => {
    const { socket, events } = await makeSocket();
    const got = [];
    socket.on('notice', () => { throw new Error('boom'); });
    socket.on('notice', (f) => got.push(f.data));
    socket.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.push({ event: 'notice', data: 'hi', code: 0 });
    assert.deepEqual(got, ['hi']);
    assert.equal(events.filter((e) => e.name === 'error').length, 1);
    socket.close();
  });

  test('on() returns an unsubscribe; off() removes; * sees every frame', async () => {
    const { socket } = await makeSocket();
    const all = [];
    const notices = [];
    socket.on('*', (f) => all.push(f.event));
    const unsubscribe = socket.on('notice', (f) => notices.push(f.data));
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.push({ event: 'notice', data: 1, code: 0 });
    unsubscribe();
    ws.push({ event: 'notice', data: 2, code: 0 });
    socket.off('*');
    ws.push({ event: 'notice', data: 3, code: 0 });
    assert.deepEqual(notices, [1]);
    assert.deepEqual(all, ['connected', 'notice', 'notice']);
    socket.close();
  });

  test('unreadable frames are reported, not thrown', async () => {
    const { socket, events } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.push('{not json');
    assert.equal(events.filter((e) => e.name === 'error').length, 1);
    assert.equal(socket.state, 'open');
    socket.close();
  });

  test('binary frames holding JSON are decoded', async () => {
    const { socket } = await makeSocket();
    const got = [];
    socket.on('notice', (f) => got.push(f.data));
    socket.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.onmessage({ data: new TextEncoder().encode('{"event":"notice","data":"bin","code":0}').buffer });
    assert.deepEqual(got, ['bin']);
    socket.close();
  });
});
