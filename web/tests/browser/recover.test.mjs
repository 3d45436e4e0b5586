// Delivery you can rely on, seen from the panel: pushes sent while the panel's
// socket was down are replayed after it reconnects; a gap that left the history is reported.
// Skipped while the server does not tag pushes with stream/offset/epoch yet.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, waitForConnState, assertNoPageErrors } from '../lib/panel.mjs';

const HISTORY_SIZE = 3;
let server;
let browser;
let token;

before(async () => {
  server = await TestServer.start({ env: { SWITCHBOARD_HISTORY__SIZE: String(HISTORY_SIZE) } });
  browser = await launchBrowser();
  ({ token } = await server.login());
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function pushToUser(userId, data) {
  const res = await server.http('POST', '/api/websocket/send/toUser', { token, body: { userId, event: 'notice', data } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.delivered;
}

/** Log in, send one push to myself and see whether it carried a stream position. */
async function setUp() {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  const me = await page.evaluate(() => window.switchboardPanel.session.user);
  await pushToUser(me.id, { title: 'before', message: 'seen live' });
  await page.locator('[data-testid="event-log"] [data-event="notice"]', { hasText: 'seen live' }).waitFor();
  const positions = await page.evaluate(() => window.switchboardPanel.socket.positions);
  // Every push to a user carries its stream position; without it there is nothing to recover.
  assert.ok(Object.keys(positions).some((s) => s.startsWith('user:')), 'pushes carry stream, offset and epoch');
  return { page, me, stream: Object.keys(positions).find((s) => s.startsWith('user:')), positions };
}

/**
 * Take the panel's socket down the way a flaky network would: the browser stops talking, the
 * server sees the connection go. The client keeps its stream positions, as after any drop.
 */
async function dropConnection(page) {
  await page.evaluate(() => window.switchboardPanel.socket.close(4000, 'test: network drop'));
  // Wait until the server has dropped the connection from its indexes.
  const deadline = Date.now() + 10000;
  for (;;) {
    const online = await server.http('GET', '/api/websocket/online?pageSize=200', { token });
    if (online.body.total === 0) return;
    if (Date.now() > deadline) throw new Error('the server still lists the dropped connection');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function reconnect(page) {
  await page.evaluate(() => window.switchboardPanel.socket.connect());
  await waitForConnState(page, 'open');
}

test('pushes missed while disconnected are shown after the reconnect, in order, once', async () => {
  const ctx = await setUp();
  const { page, me, stream, positions } = ctx;
  const start = positions[stream].offset;

  await dropConnection(page);
  for (const n of [1, 2, 3]) assert.equal(await pushToUser(me.id, { title: `missed ${n}`, message: `missed push ${n}` }), 0);
  await reconnect(page);

  await page.locator('[data-testid="event-log"] [data-event="recover"]', { hasText: 'Recovered' }).waitFor();
  const log = page.locator('[data-testid="event-log"] [data-event="notice"]');
  await log.filter({ hasText: 'missed push 3' }).waitFor();
  const texts = await log.allTextContents(); // newest first
  const missed = texts.filter((x) => /missed push \d/.test(x)).reverse();
  assert.equal(missed.length, 3, `each missed push exactly once: ${missed.join(' | ')}`);
  missed.forEach((text, i) => {
    assert.match(text, new RegExp(`missed push ${i + 1}`));
    assert.match(text, new RegExp(`${stream} #${start + i + 1}`), 'consecutive offsets');
  });
  assert.equal(await page.locator('[data-testid="toast"][data-event="recover-gap"]').count(), 0, 'no gap reported');
  assertNoPageErrors(page);
  await page.close();
});

test('a gap longer than the history is reported to the user', async () => {
  const ctx = await setUp();
  const { page, me } = ctx;

  await dropConnection(page);
  for (let n = 1; n <= HISTORY_SIZE + 3; n++) await pushToUser(me.id, { title: 'lost', message: `lost push ${n}` });
  await reconnect(page);

  const toast = page.locator('[data-testid="toast"][data-event="recover-gap"]');
  await toast.waitFor();
  assert.match(await toast.textContent(), /may be missing/);
  await page.locator('[data-testid="event-log"] [data-event="recover"]', { hasText: 'Could not recover' }).waitFor();
  assertNoPageErrors(page);
  await page.close();
});
