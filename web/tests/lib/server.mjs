// Starts a real Switchboard server for browser tests: free port, fresh data dir, web/ served live
// from disk, cwd = the repository root. The binary comes from SWITCHBOARD_BIN.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of web/ (this file is web/tests/lib/server.mjs). */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The repository root: the server's working directory (it reads resource/config/config.toml). */
export const REPO_ROOT = path.resolve(WEB_DIR, '..');

/** The server binary from SWITCHBOARD_BIN, or a clear error. */
export function serverBinary() {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) {
    throw new Error('SWITCHBOARD_BIN is not set. The browser tests need a built server, e.g.\n'
      + '  cargo build --release && SWITCHBOARD_BIN=target/release/switchboard bash web/tests/run.sh');
  }
  const resolved = path.resolve(bin); // relative to the current directory
  if (!fs.existsSync(resolved)) throw new Error(`SWITCHBOARD_BIN=${bin} does not exist (resolved to ${resolved})`);
  return resolved;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Servers still running when this process exits (a crashed test file) are killed, never orphaned.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class TestServer {
  /**
   * Start a server and wait until GET /healthz answers 200.
   * @param {{env?: Object<string,string>, adminPassword?: string}} [options] extra environment
   *   (e.g. SWITCHBOARD_HISTORY__SIZE) on top of the address, data dir, admin password and web dir.
   */
  static async start(options = {}) {
    const server = new TestServer(options);
    await server.start();
    return server;
  }

  constructor({ env = {}, adminPassword } = {}) {
    this.bin = serverBinary();
    this.extraEnv = env;
    this.adminPassword = adminPassword || `Adm1n-${Math.random().toString(36).slice(2, 10)}`;
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-web-test-'));
    this.dataDir = path.join(this.root, 'data');
    fs.mkdirSync(this.dataDir);
    this.logFile = path.join(this.root, 'server.log');
    this.port = null;
    this.child = null;
    this.exited = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Start (or start again, with the same port and data dir). */
  async start({ timeout = 30000 } = {}) {
    if (this.child) throw new Error('server already running');
    if (!this.port) this.port = await freePort();
    const deadline = Date.now() + timeout;
    // After a stop the port can take a moment to be bindable again: retry a failed start.
    for (let attempt = 1; ; attempt++) {
      this._spawn();
      try {
        await this._waitHealthy(deadline);
        return;
      } catch (err) {
        if (this.child) await this.stop();
        if (Date.now() >= deadline || attempt >= 5 || !err.exitedEarly) throw err;
        await sleep(500);
      }
    }
  }

  _spawn() {
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n--- start ${new Date().toISOString()} on port ${this.port}\n`);
    const env = {
      ...process.env,
      SWITCHBOARD_SERVER__ADDRESS: `127.0.0.1:${this.port}`,
      SWITCHBOARD_SERVER__DATA_DIR: this.dataDir,
      SWITCHBOARD_AUTH__ADMIN_PASSWORD: this.adminPassword,
      SWITCHBOARD_WEB__DIR: WEB_DIR,
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...this.extraEnv,
    };
    const child = spawn(this.bin, [], { cwd: REPO_ROOT, env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.child = child;
    running.add(child);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }));
    this.exited.then(() => { if (this.child === child) this.child = null; });
  }

  async _waitHealthy(deadline) {
    const child = this.child;
    let gone = null;
    this.exited.then((how) => { gone = how; });
    while (Date.now() < deadline) {
      if (gone) {
        const err = new Error(`the server exited during start-up (${gone.code ?? gone.signal}). Log:\n${this.logTail()}`);
        err.exitedEarly = true;
        throw err;
      }
      try {
        const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    if (this.child === child) await this.stop();
    throw new Error(`the server did not answer GET /healthz with 200 in time. Log:\n${this.logTail()}`);
  }

  /** Stop with SIGTERM (graceful), SIGKILL after `timeout`. */
  async stop({ signal = 'SIGTERM', timeout = 15000 } = {}) {
    const child = this.child;
    if (!child) return null;
    const exited = this.exited;
    child.kill(signal);
    const result = await Promise.race([exited, sleep(timeout).then(() => null)]);
    if (result) return result;
    child.kill('SIGKILL');
    return exited;
  }

  /** Stop and delete the data dir (keeps it when KEEP_TEST_DATA is set). */
  async dispose() {
    await this.stop();
    if (!process.env.KEEP_TEST_DATA) fs.rmSync(this.root, { recursive: true, force: true });
  }

  logTail(lines = 40) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  // ---- HTTP helpers for test setup

  /** Call the API; returns {status, body}. `apiKey` is sent as X-API-Key. */
  async http(method, urlPath, { body, token, apiKey } = {}) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (apiKey) headers['X-API-Key'] = apiKey;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.url + urlPath, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed = text;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* keep text */ }
    return { status: res.status, body: parsed };
  }

  /** Log in through the API; returns the login response ({token, expiresAt, user}). */
  async login(username = 'admin', password = this.adminPassword) {
    const { status, body } = await this.http('POST', '/api/auth/login', { body: { username, password } });
    if (status !== 200) throw new Error(`login as ${username} answered ${status}: ${JSON.stringify(body)}`);
    return body;
  }
}
