// Logging in, the socket connecting (client id, latency), and logging out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, shownClientId, goTo, waitForConnState, assertNoPageErrors } from '../lib/panel.mjs';

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

test('a wrong password shows the server message and stays on login', async () => {
  const page = await newPage(browser.context);
  await page.goto(`${server.url}/`);
  await page.waitForURL(/#\/login$/);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('definitely-wrong');
  await page.getByRole('button', { name: 'Log in' }).click();
  const error = page.locator('[data-testid="login-error"]');
  await error.waitFor();
  const text = (await error.textContent()).trim();
  assert.ok(text.length > 0, 'an error message is shown');
  assert.match(page.url(), /#\/login$/);
  assertNoPageErrors(page);
  await page.close();
});

test('logging in connects the socket and shows the client id from the greeting', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);

  const headerId = await shownClientId(page);
  assert.ok(headerId.length > 0, 'the header shows a client id');
  const dashId = (await page.locator('[data-testid="client-id"]').textContent()).trim();
  assert.equal(dashId, headerId, 'dashboard and header agree');
  assert.equal((await page.locator('[data-testid="dash-state"]').textContent()).trim(), 'Connected');

  // The id is the one the server knows for this connection.
  const { token } = await server.login();
  const online = await server.http('GET', '/api/websocket/online?page=1&pageSize=200', { token });
  assert.equal(online.status, 200);
  assert.ok(online.body.list.some((c) => String(c.id) === headerId), `client ${headerId} is in the online list`);

  // Latency from a ping round trip.
  await page.waitForFunction(() => /^\d+ ms$/.test(document.querySelector('[data-testid="latency"]')?.textContent || ''));
  await page.getByRole('button', { name: 'Ping now' }).click();
  await page.waitForFunction(() => /^\d+ ms$/.test(document.querySelector('[data-testid="latency"]')?.textContent || ''));

  // The greeting is in the live log.
  await page.locator('[data-testid="event-log"] [data-event="connected"]').first().waitFor();
  assertNoPageErrors(page);
  await page.close();
});

test('an admin sees every page; logging out goes back to login', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const name of ['Dashboard', 'Online users', 'Send', 'Tags', 'hgexample']) {
    assert.equal(await nav.getByRole('link', { name }).count(), 1, `nav has ${name}`);
  }
  await goTo(page, '/online', 'Online users');
  await page.getByTestId('logout').click();
  await page.waitForURL(/#\/login$/);
  await page.getByLabel('Username').waitFor();
  // The token is gone: going back to a page asks for a login again.
  await page.evaluate(() => { location.hash = '#/online'; });
  await page.waitForURL(/#\/login$/);
  assertNoPageErrors(page);
  await page.close();
});

test('a reload keeps the session and reconnects', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  const before = await shownClientId(page);
  await page.reload();
  await waitForConnState(page, 'open');
  const afterReload = await shownClientId(page);
  assert.ok(afterReload && afterReload !== before, 'a new connection after reload');
  assertNoPageErrors(page);
  await page.close();
});
