// Kicking yourself from the online page ends the session and shows the reason on the login page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, shownClientId, assertNoPageErrors } from '../lib/panel.mjs';

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

test('kicking my own connection with a reason lands on login showing the reason', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  const myId = await shownClientId(page);
  await goTo(page, '/online', 'Online users');

  const row = page.locator(`tr[data-client-id="${myId}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /you/);
  await row.getByTestId('kick').click();

  const dialog = page.getByTestId('kick-dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /your own connection/);
  await dialog.getByLabel('Reason').fill('maintenance window 42');
  await dialog.getByTestId('kick-confirm').click();

  await page.waitForURL(/#\/login$/);
  const flash = page.getByTestId('login-flash');
  await flash.waitFor();
  assert.match(await flash.textContent(), /maintenance window 42/);
  assert.equal(await flash.getAttribute('data-kind'), 'kicked');

  // The session is gone and the socket did not come back.
  assert.equal(await page.evaluate(() => window.switchboardPanel.session), null);
  await page.waitForTimeout(1500);
  const { token } = await server.login();
  const online = await server.http('GET', '/api/websocket/online?pageSize=200', { token });
  assert.ok(!online.body.list.some((c) => String(c.id) === myId), 'the kicked connection is gone');
  assert.equal(online.body.total, 0, 'no reconnect after 4001');
  assertNoPageErrors(page);
  await page.close();
});

test('kicking another user leaves me connected and removes them from the list', async () => {
  const { token } = await server.login();
  const created = await server.http('POST', '/api/users', { token, body: { username: 'kickme', password: 'Kick-me-123', roles: ['member'] } });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  const victim = await newPage(browser.context);
  await loginThroughForm(victim, server, 'kickme', 'Kick-me-123');
  const victimId = await shownClientId(victim);

  const admin = await newPage(browser.context);
  await loginThroughForm(admin, server, 'admin', server.adminPassword);
  await goTo(admin, '/online', 'Online users');
  await admin.getByLabel('Username').fill('kickme');
  await admin.getByRole('button', { name: 'Search' }).click();
  const row = admin.locator(`tr[data-client-id="${victimId}"]`);
  await row.waitFor();
  // The filter leaves this one row (the unfiltered list showed my own connection too).
  await admin.waitForFunction(() => document.querySelectorAll('[data-testid="online-table"] tbody tr').length === 1);
  await row.getByTestId('kick').click();
  const dialog = admin.getByTestId('kick-dialog');
  await dialog.getByLabel('Reason').fill('bye');
  await dialog.getByTestId('kick-confirm').click();
  await admin.locator('[data-testid="toast"]', { hasText: 'Closed 1 connection' }).waitFor();
  await row.waitFor({ state: 'detached' });

  await victim.waitForURL(/#\/login$/);
  assert.match(await victim.getByTestId('login-flash').textContent(), /bye/);
  assert.equal(await admin.evaluate(() => window.switchboardPanel.conn.state), 'open');
  assertNoPageErrors(admin);
  assertNoPageErrors(victim);
});

test('a token revoked elsewhere (close 4003) returns to login with an explanation', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  const token = await page.evaluate(() => window.switchboardPanel.session.token);
  // Log this very token out through the API, as another tab or a script would.
  const res = await server.http('POST', '/api/auth/logout', { token });
  assert.ok(res.status >= 200 && res.status < 300, `logout answered ${res.status}`);
  await page.waitForURL(/#\/login$/);
  const flash = page.getByTestId('login-flash');
  await flash.waitFor();
  assert.equal(await flash.getAttribute('data-kind'), 'revoked');
  assert.match(await flash.textContent(), /log in again/i);
  assertNoPageErrors(page);
  await page.close();
});
