// Stopping the server: the panel shows it is reconnecting; starting it again: it reconnects.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, waitForConnState, shownClientId, connStatus, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let browser;

before(async () => {
  server = await TestServer.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('server stop → reconnecting; server start (same port and data) → connected again', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  const firstId = await shownClientId(page);

  const stopped = await server.stop();
  assert.ok(stopped, 'the server stopped');
  await waitForConnState(page, 'reconnecting');
  assert.match(await connStatus(page).textContent(), /Reconnecting/);
  assert.equal(await page.locator('[data-testid="dash-state"]').textContent(), 'Reconnecting');

  // Several attempts fail while it is down; the panel keeps backing off and keeps the session.
  await page.waitForTimeout(2500);
  await waitForConnState(page, 'reconnecting');
  assert.match(page.url(), /#\/dashboard$/);

  await server.start();
  // Backoff is capped, so this comes within the cap plus the handshake.
  await waitForConnState(page, 'open', 45000);
  const secondId = await shownClientId(page);
  assert.ok(secondId.length > 0 && secondId !== firstId, `new client id ${secondId} (was ${firstId})`);
  assert.ok(Number(await page.getByTestId('reconnects').textContent()) >= 1);

  // The token survived the restart: the API still accepts it.
  const ok = await page.evaluate(async () => (await fetch('/api/auth/me', { headers: { Authorization: `Bearer ${window.switchboardPanel.session.token}` } })).status);
  assert.equal(ok, 200);
  assertNoPageErrors(page);
  await page.close();
});
