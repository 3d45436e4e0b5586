/**
 * Switchboard WebSocket client: a dependency-free ES module for browsers (and node, given a
 * WebSocket implementation).
 *
 * What it does for you:
 * - authenticates with the `Sec-WebSocket-Protocol` header (`switchboard.v1, bearer.<token>`), so
 *   the token never lands in a URL or a server log;
 * - reconnects with exponential backoff and full jitter, capped, and never in a tight loop; it stops
 *   for good on close codes 4001 (kicked) and 4003 (token revoked or expired);
 * - sends a `ping` heartbeat and measures the round trip;
 * - matches replies to requests by `seqno` (`request()` returns a promise, with a timeout);
 * - remembers the last `offset`/`epoch` seen per stream, drops duplicate pushes, and after a
 *   reconnect re-joins its tags and sends `recover` so missed pushes are replayed.
 *
 * @module socket
 */

/** Close codes the server uses; each tells the client whether and how to reconnect. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  /** Not sent by the server: the client closes with it when a heartbeat goes unanswered. */
  HEARTBEAT_TIMEOUT: 4000,
  KICKED: 4001,
  TOKEN_REVOKED: 4003,
  SLOW_CONSUMER: 4008,
  IDLE_TIMEOUT: 4009,
  TOO_MANY_CONNECTIONS: 4029,
});

/** Close codes after which reconnecting would be wrong: the user has to log in again. */
export const TERMINAL_CLOSE_CODES = Object.freeze([CloseCode.KICKED, CloseCode.TOKEN_REVOKED]);

/** The subprotocol the server selects. */
export const SUBPROTOCOL = 'switchboard.v1';

const OPEN = 1;
const RESERVED_STATE_EVENTS = new Set([
  'state', 'connecting', 'open', 'reconnecting', 'closed', 'latency', 'tags', 'recovered',
  'recoverfailed', 'error',
]);

/**
 * Delay before reconnect attempt number `attempt` (0-based): "full jitter" backoff.
 *
 * The ceiling doubles with each attempt up to `max`; the delay is drawn uniformly between `min` and
 * that ceiling, so a crowd of clients that lost the same server spreads out instead of stampeding,
 * and `min` keeps even an unlucky draw from turning into a tight loop.
 *
 * @param {number} attempt 0 for the first retry after a connection was lost.
 * @param {{base?: number, max?: number, min?: number, random?: () => number}} [options]
 *   `base` first ceiling in ms (default 500), `max` cap in ms (default 30000), `min` floor in ms
 *   (default 250), `random` a source in [0, 1) (default Math.random).
 * @returns {number} milliseconds, an integer in [min, min(max, base * 2^attempt)].
 */
export function backoffDelay(attempt, options = {}) {
  const { base = 500, max = 30000, min = 250, random = Math.random } = options;
  const exponent = Math.min(Math.max(0, attempt), 30); // 2^30 * base is far past any cap
  const ceiling = Math.max(min, Math.min(max, base * 2 ** exponent));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(min + r * (ceiling - min));
}

/**
 * An error reply (`code` ≠ 0), a timeout, or a request that could not be sent.
 */
export class SocketRequestError extends Error {
  /**
   * @param {string} message
   * @param {number|string} code the reply's `code`, or `'timeout'`, `'not_connected'`,
   *   `'connection_closed'`.
   * @param {object} [frame] the reply frame, when there was one.
   */
  constructor(message, code, frame) {
    super(message);
    this.name = 'SocketRequestError';
    this.code = code;
    this.errorMsg = frame ? frame.errorMsg : undefined;
    this.frame = frame;
  }
}

/**
 * @typedef {object} Frame A server → client frame.
 * @property {string} event
 * @property {*} [data]
 * @property {number} code 0 for success.
 * @property {string} [errorMsg]
 * @property {string|number} [seqno] echoed on replies.
 * @property {number} [timestamp] unix seconds.
 * @property {string} [stream] on pushes addressed to a user, a tag or all (`user:42`, `tag:x`, `all`).
 * @property {number} [offset] position of this push in its stream (1, 2, 3…).
 * @property {string} [epoch] changes whenever the stream's history is lost.
 */

/**
 * @typedef {object} SwitchboardSocketOptions
 * @property {string | (() => string)} url WebSocket URL, e.g. `ws://host/socket` (the `wsAddr` of
 *   `GET /api/site/config`). A function is called before every attempt.
 * @property {string | null | (() => string | null)} [token] JWT; a function is called before every
 *   attempt, so a refreshed token is picked up. Without a token the client connects anonymously.
 * @property {Function} [WebSocketImpl] the WebSocket constructor (default `globalThis.WebSocket`).
 * @property {number} [requestTimeout] default `request()` timeout in ms (10000).
 * @property {number} [heartbeatInterval] ms between pings; default: the server's `pingInterval`
 *   from `connected`, at most half its `idleTimeout`, else 25000. 0 turns the heartbeat off.
 * @property {number} [heartbeatTimeout] ms to wait for a ping reply before the connection is taken
 *   as dead and replaced (default 10000).
 * @property {{base?: number, max?: number, min?: number}} [backoff] see {@link backoffDelay}.
 * @property {number} [stableAfter] ms a connection must stay up before the backoff starts over
 *   (default 5000), so a server that accepts and drops at once is not hammered.
 * @property {boolean} [recover] send `recover` after a reconnect (default true).
 * @property {boolean} [rejoinTags] re-join tags joined through `join()` after a reconnect
 *   (default true).
 * @property {Object<string, {offset: number, epoch: string}>} [positions] stream positions to start
 *   from (e.g. saved by a previous page).
 * @property {() => number} [random] randomness for the jitter (tests).
 * @property {{setTimeout: Function, clearTimeout: Function, now: () => number}} [clock] timers (tests).
 */

/**
 * A Switchboard connection that keeps itself alive.
 *
 * Listen with `on(name, fn)`. Frame handlers get the whole frame; `'*'` gets every frame. These
 * names are the client's own (state) events and never frames:
 * - `state` `{state}` on every change of {@link SwitchboardSocket#state};
 * - `connecting` `{attempt}`; `open` `{}` once the transport is up;
 * - `reconnecting` `{attempt, delay, code, reason}` after a connection was lost;
 * - `closed` `{code, reason, terminal, kickReason}`: the client has stopped; `terminal` is true
 *   for 4001/4003, after which the user must log in again (`kickReason` from the `kick` push);
 * - `latency` `{rtt}` after every heartbeat, in ms;
 * - `tags` `{tags}` when the connection's tag list changed (join, quit, reconnect);
 * - `recovered` `{recovered, missed}` after a `recover` reply; `missed` lists the streams whose gap
 *   could not be filled (the server answered false), so the UI can ask the user to reload;
 * - `recoverfailed` `{error}` when the `recover` request itself failed;
 * - `error` `{error}` for an unreadable frame.
 *
 * @example
 * import { SwitchboardSocket } from './socket.js';
 * const socket = new SwitchboardSocket({ url: 'ws://127.0.0.1:8000/socket', token });
 * socket.on('connected', (frame) => console.log('my id', frame.data.id));
 * socket.on('notice', (frame) => alert(frame.data));
 * socket.on('closed', ({ terminal, kickReason }) => terminal && goToLogin(kickReason));
 * socket.connect();
 * const reply = await socket.request('admin/addons/hgexample/testMessage', { hello: 1 });
 */
export class SwitchboardSocket {
  /** @param {SwitchboardSocketOptions} options */
  constructor(options) {
    if (!options || !options.url) throw new TypeError('SwitchboardSocket: options.url is required');
    this._url = options.url;
    this._token = options.token ?? null;
    this._WebSocket = options.WebSocketImpl || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('SwitchboardSocket: no WebSocket implementation; pass options.WebSocketImpl');
    }
    this._requestTimeout = options.requestTimeout ?? 10000;
    this._heartbeatOption = options.heartbeatInterval;
    this._heartbeatTimeout = options.heartbeatTimeout ?? 10000;
    this._backoff = { ...(options.backoff || {}), random: options.random || Math.random };
    this._stableAfter = options.stableAfter ?? 5000;
    this._recoverEnabled = options.recover ?? true;
    this._rejoinEnabled = options.rejoinTags ?? true;
    const clock = options.clock || {};
    this._setTimeout = clock.setTimeout || ((fn, ms) => setTimeout(fn, ms));
    this._clearTimeout = clock.clearTimeout || ((id) => clearTimeout(id));
    const perf = globalThis.performance;
    this._now = clock.now || (perf && typeof perf.now === 'function' ? () => perf.now() : () => Date.now());

    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    /** @type {Map<string, {resolve: Function, reject: Function, timer: *}>} */
    this._pending = new Map();
    /** @type {Map<string, {offset: number, epoch: string}>} */
    this._positions = new Map(Object.entries(options.positions || {}));
    /** Tags this client joined itself; re-joined after a reconnect. */
    this._tags = new Set();
    this._serverTags = [];

    this._ws = null;
    this._state = 'idle';
    this._seq = 0;
    this._attempt = 0;
    this._connections = 0; // transports that reached `connected`
    this._openedAt = 0;
    this._reconnectTimer = null;
    this._heartbeatTimer = null;
    this._info = null;
    this._kickReason = null;
    this._latency = null;
  }

  /** `idle` | `connecting` | `open` | `reconnecting` | `closed`. */
  get state() { return this._state; }

  /** The `data` of the latest `connected` frame (`{id, userId, username, node, …}`), or null. */
  get info() { return this._info; }

  /** This connection's client id, or null while not connected. */
  get clientId() { return this._state === 'open' && this._info ? this._info.id : null; }

  /** Last heartbeat round trip in ms, or null. */
  get latency() { return this._latency; }

  /** The connection's tags as the server last reported them (sorted). */
  get tags() { return [...this._serverTags]; }

  /** Last `{offset, epoch}` seen per stream, as a plain object (for saving or `recover`). */
  get positions() { return Object.fromEntries(this._positions); }

  /**
   * Subscribe to a frame event (`'notice'`, `'connected'`, any addon event), `'*'` for every frame,
   * or one of the client's own events (see the class doc).
   * @param {string} event
   * @param {(payload: any) => void} fn
   * @returns {() => void} a function that unsubscribes.
   */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /**
   * Unsubscribe; without `fn`, drop every handler of `event`.
   * @param {string} event
   * @param {Function} [fn]
   */
  off(event, fn) {
    const set = this._listeners.get(event);
    if (!set) return;
    if (fn) set.delete(fn); else set.clear();
  }

  /**
   * Start connecting (no-op when already connecting or connected). After `close()`, calling it
   * again reconnects and, since the client remembers its stream positions, recovers what it missed.
   */
  connect() {
    if (this._state === 'connecting' || this._state === 'open' || this._state === 'reconnecting') return;
    this._attempt = 0;
    this._kickReason = null;
    this._open();
  }

  /**
   * Close for good: no reconnect. Pending requests are rejected.
   * @param {number} [code=1000]
   * @param {string} [reason]
   */
  close(code = CloseCode.NORMAL, reason = 'client closed') {
    this._cancelReconnect();
    const ws = this._ws;
    this._detach();
    if (ws) {
      try { ws.close(code, reason); } catch { /* already closing */ }
    }
    this._rejectAll('connection_closed', 'connection closed');
    if (this._state !== 'closed') {
      this._setState('closed');
      this._emit('closed', { code, reason, terminal: false, kickReason: null, byClient: true });
    }
  }

  /** Drop the current connection and connect again now, keeping stream positions. */
  reconnect() {
    this.close(CloseCode.NORMAL, 'reconnect');
    this.connect();
  }

  /**
   * Send a frame without waiting for an answer.
   * @param {string} event
   * @param {*} [data]
   * @returns {boolean} false when not connected (nothing was sent).
   */
  send(event, data) {
    return this._write(data === undefined ? { event } : { event, data });
  }

  /**
   * Send a request and wait for the reply with the same `seqno`.
   * Resolves with the reply frame when its `code` is 0; rejects with a {@link SocketRequestError}
   * carrying `code` and `errorMsg` otherwise, on timeout (`code: 'timeout'`), when not connected
   * (`'not_connected'`) or when the connection drops first (`'connection_closed'`).
   * @param {string} event
   * @param {*} [data]
   * @param {{timeout?: number}} [options] timeout in ms (default `requestTimeout`).
   * @returns {Promise<Frame>}
   */
  request(event, data, options = {}) {
    const timeout = options.timeout ?? this._requestTimeout;
    const seqno = String(++this._seq);
    const frame = data === undefined ? { event, seqno } : { event, data, seqno };
    return new Promise((resolve, reject) => {
      if (!this._isOpen()) {
        reject(new SocketRequestError(`not connected: cannot send ${event}`, 'not_connected'));
        return;
      }
      const timer = this._setTimeout(() => {
        this._pending.delete(seqno);
        reject(new SocketRequestError(`${event}: no reply within ${timeout} ms`, 'timeout'));
      }, timeout);
      this._pending.set(seqno, { resolve, reject, timer, event });
      if (!this._write(frame)) {
        this._settle(seqno);
        reject(new SocketRequestError(`not connected: cannot send ${event}`, 'not_connected'));
      }
    });
  }

  /**
   * Measure the round trip with a `ping` request.
   * @param {{timeout?: number}} [options]
   * @returns {Promise<number>} milliseconds.
   */
  async ping(options = {}) {
    const started = this._now();
    await this.request('ping', undefined, options);
    this._latency = this._now() - started;
    this._emit('latency', { rtt: this._latency });
    return this._latency;
  }

  /**
   * Join a tag with this connection; it is re-joined automatically after a reconnect.
   * @param {string} tag
   * @returns {Promise<string[]>} the connection's sorted tag list.
   */
  async join(tag) {
    const reply = await this.request('join', { id: tag });
    this._tags.add(tag);
    this._setServerTags(reply.data);
    return this.tags;
  }

  /**
   * Leave a tag.
   * @param {string} tag
   * @returns {Promise<string[]>} the connection's sorted tag list.
   */
  async quit(tag) {
    this._tags.delete(tag);
    const reply = await this.request('quit', { id: tag });
    this._setServerTags(reply.data);
    return this.tags;
  }

  // ---------------------------------------------------------------- internals

  _resolve(value) {
    return typeof value === 'function' ? value() : value;
  }

  _setServerTags(list) {
    const tags = Array.isArray(list) ? list.map(String) : [];
    const same = tags.length === this._serverTags.length && tags.every((t, i) => t === this._serverTags[i]);
    this._serverTags = tags;
    if (!same) this._emit('tags', { tags: [...tags] });
  }

  _isOpen() {
    return !!this._ws && this._ws.readyState === OPEN;
  }

  _write(frame) {
    if (!this._isOpen()) return false;
    try {
      this._ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  _setState(state) {
    if (this._state === state) return;
    this._state = state;
    this._emit('state', { state });
  }

  _emit(event, payload) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (error) {
        // A broken handler must not break the connection or the other handlers.
        if (event !== 'error') this._emit('error', { error });
      }
    }
  }

  /**
   * The socket URL; when reconnecting with stream positions to recover, `recover=1` asks the
   * server to hold live stream pushes until our `recover` so they arrive after the replay.
   */
  _connectUrl() {
    const url = this._resolve(this._url);
    if (!this._recoverEnabled || this._positions.size === 0) return url;
    return url + (url.includes('?') ? '&' : '?') + 'recover=1';
  }

  _open() {
    this._cancelReconnect();
    const first = this._connections === 0;
    this._setState(first ? 'connecting' : 'reconnecting');
    this._emit('connecting', { attempt: this._attempt });
    const token = this._resolve(this._token);
    const protocols = token ? [SUBPROTOCOL, `bearer.${token}`] : [SUBPROTOCOL];
    let ws;
    try {
      ws = new this._WebSocket(this._connectUrl(), protocols);
    } catch (error) {
      this._emit('error', { error });
      this._scheduleReconnect(CloseCode.ABNORMAL, String(error && error.message));
      return;
    }
    this._ws = ws;
    if ('binaryType' in ws) ws.binaryType = 'arraybuffer';
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event.data);
    ws.onclose = (event) => this._onClose(ws, event.code, event.reason);
    ws.onerror = () => { /* a close event follows; it carries the information */ };
  }

  _onOpen(ws) {
    if (ws !== this._ws) return;
    this._openedAt = this._now();
    this._emit('open', {});
  }

  _onMessage(ws, raw) {
    if (ws !== this._ws) return;
    if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) raw = new TextDecoder().decode(raw);
    if (typeof raw !== 'string' || raw.length === 0) return;
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (error) {
      this._emit('error', { error: new Error(`unreadable frame: ${raw.slice(0, 120)}`) });
      return;
    }
    if (!frame || typeof frame !== 'object' || typeof frame.event !== 'string') return;
    if (!this._acceptPosition(frame)) return; // a duplicate of a push already seen
    if (frame.event === 'connected') this._onConnected(frame);
    if (frame.event === 'kick') this._kickReason = frame.data && frame.data.reason != null ? String(frame.data.reason) : '';
    if (frame.seqno !== undefined && frame.seqno !== null) this._settle(String(frame.seqno), frame);
    this._emit('*', frame);
    if (!RESERVED_STATE_EVENTS.has(frame.event)) this._emit(frame.event, frame);
  }

  /**
   * Track stream positions; returns false for a push at or below the last offset seen in the same
   * epoch (a replay overlapping live delivery, or a duplicate).
   */
  _acceptPosition(frame) {
    if (typeof frame.stream !== 'string' || typeof frame.offset !== 'number') return true;
    const last = this._positions.get(frame.stream);
    if (last && last.epoch === frame.epoch && frame.offset <= last.offset) return false;
    this._positions.set(frame.stream, { offset: frame.offset, epoch: frame.epoch });
    return true;
  }

  _onConnected(frame) {
    const data = frame.data && typeof frame.data === 'object' ? frame.data : {};
    const reconnected = this._connections > 0 || this._positions.size > 0;
    this._connections += 1;
    this._info = data;
    this._setServerTags([]);
    // A first connection starts from the positions the server announces in `connected` (its
    // user stream and `all`), so pushes missed during the first drop can be recovered; after a
    // reconnect our own positions are what to recover from.
    if (!reconnected) this._seedPositions(data);
    this._setState('open');
    this._startHeartbeat(data);
    if (reconnected) this._afterReconnect();
  }

  _seedPositions(data) {
    const seed = (stream, pos) => {
      if (typeof stream !== 'string' || !pos || typeof pos.offset !== 'number') return;
      if (!this._positions.has(stream)) this._positions.set(stream, { offset: pos.offset, epoch: pos.epoch });
    };
    if (data.streams && typeof data.streams === 'object') {
      for (const [stream, pos] of Object.entries(data.streams)) seed(stream, pos);
    }
    if (typeof data.stream === 'string') seed(data.stream, data);
  }

  async _afterReconnect() {
    const ws = this._ws;
    if (this._rejoinEnabled && this._tags.size > 0) {
      // Tag streams can only be recovered by a member of the tag, so re-join first.
      await Promise.allSettled([...this._tags].map((tag) => this.request('join', { id: tag }).then((reply) => {
        this._setServerTags(reply.data);
      })));
    }
    if (!this._recoverEnabled || this._positions.size === 0 || ws !== this._ws) return;
    const streams = this.positions;
    try {
      const reply = await this.request('recover', { streams });
      const recovered = (reply.data && reply.data.recovered) || {};
      const missed = Object.keys(streams).filter((stream) => recovered[stream] !== true);
      this._emit('recovered', { recovered, missed });
    } catch (error) {
      this._emit('recoverfailed', { error });
    }
  }

  _heartbeatEvery(data) {
    if (this._heartbeatOption !== undefined) return this._heartbeatOption;
    const ping = Number(data.pingInterval) * 1000;
    const idle = Number(data.idleTimeout) * 1000;
    let every = ping > 0 ? ping : 25000;
    if (idle > 0) every = Math.min(every, idle / 2);
    return Math.max(1000, every);
  }

  _startHeartbeat(data) {
    this._stopHeartbeat();
    const every = this._heartbeatEvery(data);
    if (!every) return;
    const ws = this._ws;
    const beat = () => {
      this._heartbeatTimer = this._setTimeout(async () => {
        if (ws !== this._ws) return;
        try {
          await this.ping({ timeout: this._heartbeatTimeout });
        } catch (error) {
          if (ws !== this._ws) return;
          if (error.code === 'timeout') {
            // The connection is dead but the browser has not noticed: replace it now.
            this._drop(ws, CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
            return;
          }
        }
        if (ws === this._ws) beat();
      }, every);
    };
    beat();
  }

  _stopHeartbeat() {
    if (this._heartbeatTimer !== null) this._clearTimeout(this._heartbeatTimer);
    this._heartbeatTimer = null;
  }

  _drop(ws, code, reason) {
    try { ws.close(code, reason); } catch { /* ignore */ }
    this._onClose(ws, code, reason);
  }

  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    const lived = this._openedAt ? this._now() - this._openedAt : 0;
    this._detach();
    this._rejectAll('connection_closed', `connection closed (${code})`);
    if (TERMINAL_CLOSE_CODES.includes(code)) {
      this._setState('closed');
      this._emit('closed', { code, reason: reason || '', terminal: true, kickReason: this._kickReason });
      return;
    }
    if (lived >= this._stableAfter) this._attempt = 0;
    this._scheduleReconnect(code, reason);
  }

  _scheduleReconnect(code, reason) {
    const delay = backoffDelay(this._attempt, this._backoff);
    const attempt = this._attempt;
    this._attempt += 1;
    this._setState('reconnecting');
    this._emit('reconnecting', { attempt, delay, code, reason: reason || '' });
    this._reconnectTimer = this._setTimeout(() => {
      this._reconnectTimer = null;
      this._open();
    }, delay);
  }

  _cancelReconnect() {
    if (this._reconnectTimer !== null) this._clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
  }

  _detach() {
    this._stopHeartbeat();
    const ws = this._ws;
    this._ws = null;
    this._openedAt = 0;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    }
  }

  _settle(seqno, frame) {
    const pending = this._pending.get(seqno);
    if (!pending) return;
    this._pending.delete(seqno);
    this._clearTimeout(pending.timer);
    if (!frame) return;
    if (frame.code === 0 || frame.code === undefined) {
      pending.resolve(frame);
    } else {
      const message = frame.errorMsg || `${pending.event} failed with code ${frame.code}`;
      pending.reject(new SocketRequestError(message, frame.code, frame));
    }
  }

  _rejectAll(code, message) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      this._clearTimeout(p.timer);
      p.reject(new SocketRequestError(message, code));
    }
  }
}
