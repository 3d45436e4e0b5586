// Test doubles for socket.js: a WebSocket whose server side the test drives, and a manual clock.

/** A stand-in for the browser WebSocket. Every instance is recorded in `FakeWebSocket.instances`. */
export class FakeWebSocket {
  static instances = [];

  static reset() {
    FakeWebSocket.instances = [];
  }

  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    FakeWebSocket.instances.push(this);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // --- the server's side

  /** The upgrade succeeded. */
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** Upgrade, then the `connected` greeting. */
  accept(data = {}) {
    this.open();
    this.push({ event: 'connected', data: { id: 'c1', userId: 1, username: 'admin', node: 'n1', pingInterval: 25, idleTimeout: 60, ...data }, code: 0 });
  }

  /** Deliver a frame (an object is serialised). */
  push(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  /** Reply to the n-th request sent with `event` (default: the latest one). */
  reply(event, fields = {}, which = -1) {
    const requests = this.sent.filter((f) => f.event === event);
    const request = requests.at(which);
    if (!request) throw new Error(`no ${event} request was sent`);
    this.push({ event, code: 0, seqno: request.seqno, timestamp: 1, ...fields });
    return request;
  }

  /** The server (or the network) closed the connection. */
  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /** Frames sent with this event name. */
  sentOf(event) {
    return this.sent.filter((f) => f.event === event);
  }
}

/** A clock whose time only moves when the test says so. */
export class FakeClock {
  constructor() {
    this.time = 0;
    this.nextId = 1;
    this.timers = new Map();
  }

  setTimeout = (fn, ms) => {
    const id = this.nextId++;
    this.timers.set(id, { fn, at: this.time + Math.max(0, ms) });
    return id;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  now = () => this.time;

  /** Advance time by `ms`, running due timers in order (timers they set run too, if due). */
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next[1].at)) next = [id, t];
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].fn();
    }
    this.time = end;
  }

  /** Delays of the timers waiting now. */
  pendingDelays() {
    return [...this.timers.values()].map((t) => t.at - this.time);
  }
}

/** Let promise callbacks run (replies resolve request promises asynchronously). */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A client wired to the fakes: heartbeat off and jitter at its midpoint unless overridden.
 * Returns the socket, the clock and every client event it emitted (`events`, in order).
 */
export async function makeSocket(options = {}) {
  const { SwitchboardSocket } = await import('../../js/socket.js');
  FakeWebSocket.reset();
  const clock = new FakeClock();
  const socket = new SwitchboardSocket({
    url: 'ws://switchboard.test/socket',
    token: 'TOKEN',
    WebSocketImpl: FakeWebSocket,
    clock,
    random: () => 0.5,
    heartbeatInterval: 0,
    ...options,
  });
  const events = [];
  for (const name of ['state', 'connecting', 'open', 'reconnecting', 'closed', 'latency', 'tags', 'recovered', 'recoverfailed', 'error']) {
    socket.on(name, (payload) => events.push({ name, ...payload }));
  }
  return { socket, clock, events };
}
