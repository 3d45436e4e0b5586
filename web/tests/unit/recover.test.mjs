import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, makeSocket, flush } from './fakes.mjs';

const push = (stream, offset, epoch, data = offset) => ({ event: 'notice', data, code: 0, stream, offset, epoch, timestamp: 1 });

/** Lose the connection, let the backoff run out, accept the new one. */
async function reconnect(clock, events, greeting = {}) {
  FakeWebSocket.last.serverClose(1006);
  clock.advance(events.filter((e) => e.name === 'reconnecting').at(-1).delay);
  const ws = FakeWebSocket.last;
  ws.accept({ id: 'c2', ...greeting });
  await flush();
  return ws;
}

describe('stream positions and dedupe', () => {
  test('the last offset and epoch are remembered per stream', async () => {
    const { socket } = await makeSocket();
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.push(push('user:42', 1, 'e1'));
    ws.push(push('all', 7, 'eA'));
    ws.push(push('user:42', 2, 'e1'));
    ws.push(push('tag:room', 3, 'eT'));
    assert.deepEqual(socket.positions, {
      'user:42': { offset: 2, epoch: 'e1' },
      all: { offset: 7, epoch: 'eA' },
      'tag:room': { offset: 3, epoch: 'eT' },
    });
    socket.close();
  });

  test('a push at or below the last offset of the same epoch is dropped', async () => {
    const { socket } = await makeSocket();
    const got = [];
    const all = [];
    socket.on('notice', (f) => got.push(`${f.stream}#${f.offset}`));
    socket.on('*', (f) => all.push(f.event));
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.push(push('user:42', 1, 'e1'));
    ws.push(push('user:42', 2, 'e1'));
    ws.push(push('user:42', 2, 'e1')); // duplicate
    ws.push(push('user:42', 1, 'e1')); // older
    ws.push(push('user:42', 3, 'e1'));
    ws.push(push('tag:x', 1, 'e1')); // another stream has its own offsets
    assert.deepEqual(got, ['user:42#1', 'user:42#2', 'user:42#3', 'tag:x#1']);
    assert.equal(all.filter((e) => e === 'notice').length, 4, '* does not see duplicates either');
    socket.close();
  });

  test('a new epoch starts over: a lower offset is accepted', async () => {
    const { socket } = await makeSocket();
    const got = [];
    socket.on('notice', (f) => got.push(`${f.epoch}#${f.offset}`));
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.push(push('user:42', 9, 'old'));
    ws.push(push('user:42', 1, 'new'));
    ws.push(push('user:42', 1, 'new'));
    assert.deepEqual(got, ['old#9', 'new#1']);
    assert.deepEqual(socket.positions['user:42'], { offset: 1, epoch: 'new' });
    socket.close();
  });

  test('frames without stream/offset (replies, unicast pushes) are never deduped', async () => {
    const { socket } = await makeSocket();
    const got = [];
    socket.on('notice', (f) => got.push(f.data));
    socket.connect();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.push({ event: 'notice', data: 'a', code: 0 });
    ws.push({ event: 'notice', data: 'a', code: 0 });
    assert.deepEqual(got, ['a', 'a']);
    assert.deepEqual(socket.positions, {});
    socket.close();
  });
});

describe('recover after a reconnect', () => {
  test('no recover on the first connection', async () => {
    const { socket } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept();
    await flush();
    assert.equal(FakeWebSocket.last.sentOf('recover').length, 0);
    socket.close();
  });

  test('reconnects with recover=1 only when there is something to recover', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    const first = FakeWebSocket.last;
    assert.equal(first.url, 'ws://switchboard.test/socket', 'nothing to recover yet');
    first.accept();
    first.push(push('user:42', 1, 'e1'));
    const ws = await reconnect(clock, events);
    assert.equal(ws.url, 'ws://switchboard.test/socket?recover=1', 'the server holds live pushes until recover');
    socket.close();
  });

  test('sends every known stream with its last offset and epoch', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    const first = FakeWebSocket.last;
    first.accept();
    first.push(push('user:42', 16, 'e1'));
    first.push(push('user:42', 17, 'e1'));
    first.push(push('all', 3, 'eAll'));
    const ws = await reconnect(clock, events);
    const recover = ws.sentOf('recover');
    assert.equal(recover.length, 1);
    assert.deepEqual(recover[0].data, {
      streams: { 'user:42': { offset: 17, epoch: 'e1' }, all: { offset: 3, epoch: 'eAll' } },
    });
    assert.ok(recover[0].seqno !== undefined, 'recover is a request: its reply is matched');
    socket.close();
  });

  test('replayed pushes are delivered in order, then recovered is reported', async () => {
    const { socket, clock, events } = await makeSocket();
    const got = [];
    socket.on('notice', (f) => got.push(f.offset));
    socket.connect();
    const first = FakeWebSocket.last;
    first.accept();
    first.push(push('user:42', 1, 'e1'));
    const ws = await reconnect(clock, events);
    // Replay: 2 and 3 were missed; 1 comes again (overlap) and is dropped.
    ws.push(push('user:42', 1, 'e1'));
    ws.push(push('user:42', 2, 'e1'));
    ws.push(push('user:42', 3, 'e1'));
    ws.reply('recover', { data: { recovered: { 'user:42': true } } });
    await flush();
    assert.deepEqual(got, [1, 2, 3]);
    const rec = events.filter((e) => e.name === 'recovered');
    assert.equal(rec.length, 1);
    assert.deepEqual(rec[0].recovered, { 'user:42': true });
    assert.deepEqual(rec[0].missed, []);
    // A live push that races with the replay and repeats an offset is dropped too.
    ws.push(push('user:42', 3, 'e1'));
    ws.push(push('user:42', 4, 'e1'));
    assert.deepEqual(got, [1, 2, 3, 4]);
    socket.close();
  });

  test('a stream the server could not recover is reported as missed', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    const first = FakeWebSocket.last;
    first.accept();
    first.push(push('user:42', 5, 'e1'));
    first.push(push('all', 5, 'e2'));
    first.push(push('tag:gone', 1, 'e3'));
    const ws = await reconnect(clock, events);
    ws.reply('recover', { data: { recovered: { 'user:42': false, all: true } } });
    await flush();
    const rec = events.find((e) => e.name === 'recovered');
    assert.deepEqual(rec.missed.sort(), ['tag:gone', 'user:42'], 'false or absent both count as missed');
    socket.close();
  });

  test('a failed recover request is reported, and the connection lives on', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.push(push('user:42', 5, 'e1'));
    const ws = await reconnect(clock, events);
    ws.push({ event: 'recover', code: 404, errorMsg: 'unknown event', seqno: ws.sentOf('recover')[0].seqno });
    await flush();
    const failed = events.find((e) => e.name === 'recoverfailed');
    assert.equal(failed.error.code, 404);
    assert.equal(socket.state, 'open');
    socket.close();
  });

  test('nothing to recover when no stream was seen', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept();
    const ws = await reconnect(clock, events);
    assert.equal(ws.sentOf('recover').length, 0);
    socket.close();
  });

  test('positions announced by the first greeting are the starting point', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept({ streams: { 'user:42': { offset: 10, epoch: 'e1' } } });
    const ws = await reconnect(clock, events, { streams: { 'user:42': { offset: 12, epoch: 'e1' } } });
    assert.deepEqual(ws.sentOf('recover')[0].data.streams, { 'user:42': { offset: 10, epoch: 'e1' } },
      'the reconnect greeting must not move the position past what was missed');
    socket.close();
  });

  test('the greeting may also name one stream with top-level stream/offset/epoch', async () => {
    const { socket } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept({ stream: 'user:42', offset: 4, epoch: 'e9' });
    assert.deepEqual(socket.positions, { 'user:42': { offset: 4, epoch: 'e9' } });
    socket.close();
  });

  test('tags joined through join() are re-joined before recovering', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    const first = FakeWebSocket.last;
    first.accept();
    const j = socket.join('room');
    first.reply('join', { data: ['room'] });
    await j;
    first.push(push('tag:room', 2, 'eR'));
    const ws = await reconnect(clock, events);
    assert.deepEqual(ws.sent.map((f) => f.event), ['join'], 'recover waits for the join reply');
    assert.deepEqual(ws.sent[0].data, { id: 'room' });
    ws.reply('join', { data: ['room'] });
    await flush();
    assert.deepEqual(ws.sent.map((f) => f.event), ['join', 'recover']);
    assert.deepEqual(ws.sent[1].data.streams, { 'tag:room': { offset: 2, epoch: 'eR' } });
    assert.deepEqual(socket.tags, ['room']);
    socket.close();
  });

  test('a quit tag is not re-joined', async () => {
    const { socket, clock, events } = await makeSocket();
    socket.connect();
    const first = FakeWebSocket.last;
    first.accept();
    const j = socket.join('room');
    first.reply('join', { data: ['room'] });
    await j;
    const q = socket.quit('room');
    first.reply('quit', { data: [] });
    await q;
    const ws = await reconnect(clock, events);
    assert.equal(ws.sentOf('join').length, 0);
    socket.close();
  });

  test('close() then connect() recovers too (positions are kept)', async () => {
    const { socket } = await makeSocket();
    socket.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.push(push('user:1', 3, 'e'));
    socket.close();
    socket.connect();
    FakeWebSocket.last.accept();
    await flush();
    assert.deepEqual(FakeWebSocket.last.sentOf('recover')[0].data, { streams: { 'user:1': { offset: 3, epoch: 'e' } } });
    socket.close();
  });

  test('recover: false turns off recovery', async () => {
    const { socket, clock, events } = await makeSocket({ recover: false });
    socket.connect();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.push(push('user:1', 3, 'e'));
    const ws = await reconnect(clock, events);
    assert.equal(ws.sentOf('recover').length, 0);
    socket.close();
  });
});
