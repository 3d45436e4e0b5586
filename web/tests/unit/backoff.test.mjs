import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../js/socket.js';
import { FakeWebSocket, makeSocket } from './fakes.mjs';

describe('backoffDelay', () => {
  test('stays between the floor and the doubling ceiling', () => {
    const opts = { base: 500, max: 30000, min: 250 };
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30000, 500 * 2 ** attempt);
      assert.equal(backoffDelay(attempt, { ...opts, random: () => 0 }), 250, `floor at attempt ${attempt}`);
      const top = backoffDelay(attempt, { ...opts, random: () => 0.999999 });
      assert.ok(top <= ceiling && top >= ceiling - 1, `ceiling ${ceiling} at attempt ${attempt}, got ${top}`);
    }
  });

  test('is capped however many attempts failed', () => {
    for (const attempt of [10, 50, 1000, Number.MAX_SAFE_INTEGER]) {
      const d = backoffDelay(attempt, { base: 500, max: 30000, random: () => 0.999999 });
      assert.ok(d <= 30000, `attempt ${attempt} gave ${d}`);
      assert.ok(Number.isFinite(d));
    }
  });

  test('full jitter: delays spread over the whole range, not around one value', () => {
    const delays = Array.from({ length: 2000 }, () => backoffDelay(6, { base: 500, max: 30000, min: 250 }));
    const lo = Math.min(...delays);
    const hi = Math.max(...delays);
    assert.ok(lo >= 250 && hi <= 30000);
    // 2000 uniform draws over [250, 30000] cover most of it.
    assert.ok(lo < 3000, `lowest ${lo}`);
    assert.ok(hi > 27000, `highest ${hi}`);
    const distinct = new Set(delays).size;
    assert.ok(distinct > 1500, `only ${distinct} distinct delays`);
  });

  test('never zero, so a flapping server cannot cause a tight loop', () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      assert.ok(backoffDelay(attempt, { random: () => 0 }) >= 250);
    }
    assert.ok(backoffDelay(0, { random: () => 0, min: 100 }) === 100);
  });

  test('a negative or garbage random source is clamped', () => {
    assert.equal(backoffDelay(3, { base: 100, max: 1000, min: 10, random: () => -5 }), 10);
    assert.equal(backoffDelay(3, { base: 100, max: 1000, min: 10, random: () => 7 }), 800);
  });
});

describe('reconnect schedule', () => {
  test('each failed attempt doubles the ceiling until the cap', async () => {
    const { socket, clock, events } = await makeSocket({ random: () => 0.999999, backoff: { base: 1000, max: 8000, min: 100 } });
    socket.connect();
    const seen = [];
    for (let i = 0; i < 7; i++) {
      FakeWebSocket.last.serverClose(1006);
      const r = events.filter((e) => e.name === 'reconnecting').at(-1);
      seen.push(r.delay);
      assert.equal(r.attempt, i);
      assert.deepEqual(clock.pendingDelays(), [r.delay], 'exactly one reconnect timer');
      clock.advance(r.delay);
      assert.equal(FakeWebSocket.instances.length, i + 2, 'a new attempt after the delay, not before');
    }
    assert.deepEqual(seen, [999, 1999, 3999, 7999, 7999, 7999, 7999]);
    socket.close();
  });

  test('no new attempt before the delay has passed', async () => {
    const { socket, clock, events } = await makeSocket({ random: () => 0.5, backoff: { base: 1000, max: 30000, min: 0 } });
    socket.connect();
    FakeWebSocket.last.serverClose(1006);
    const delay = events.find((e) => e.name === 'reconnecting').delay;
    assert.equal(delay, 500);
    clock.advance(499);
    assert.equal(FakeWebSocket.instances.length, 1);
    clock.advance(1);
    assert.equal(FakeWebSocket.instances.length, 2);
    socket.close();
  });

  test('a connection that stayed up resets the backoff; one dropped at once does not', async () => {
    const { socket, clock, events } = await makeSocket({ random: () => 0.999999, backoff: { base: 1000, max: 30000, min: 0 }, stableAfter: 5000 });
    socket.connect();
    for (let i = 0; i < 3; i++) {
      FakeWebSocket.last.serverClose(1006);
      clock.advance(events.filter((e) => e.name === 'reconnecting').at(-1).delay);
    }
    // Accepted, then dropped straight away: the server is flapping; keep backing off.
    FakeWebSocket.last.accept();
    clock.advance(100);
    FakeWebSocket.last.serverClose(1001);
    let r = events.filter((e) => e.name === 'reconnecting').at(-1);
    assert.equal(r.attempt, 3);
    assert.equal(r.delay, 7999);
    clock.advance(r.delay);
    // Up for a minute: the next loss starts over from the first delay.
    FakeWebSocket.last.accept();
    clock.advance(60000);
    FakeWebSocket.last.serverClose(1006);
    r = events.filter((e) => e.name === 'reconnecting').at(-1);
    assert.equal(r.attempt, 0);
    assert.equal(r.delay, 999);
    socket.close();
  });

  test('a constructor that throws (bad URL) is retried with backoff too', async () => {
    let calls = 0;
    class Throwing { constructor() { calls++; throw new Error('bad url'); } }
    const { socket, clock, events } = await makeSocket({ WebSocketImpl: Throwing });
    socket.connect();
    assert.equal(calls, 1);
    assert.equal(events.filter((e) => e.name === 'reconnecting').length, 1);
    clock.advance(100);
    assert.equal(calls, 1, 'no tight loop');
    socket.close();
    clock.advance(60000);
    assert.equal(calls, 1, 'close() cancels the pending attempt');
  });
});
