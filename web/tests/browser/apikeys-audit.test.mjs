// API keys page: create a key (shown once, copy button), a service sends with it over HTTP,
// the list shows when it was last used, revoke. Audit page: that send is listed, filters work.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let browser;
let page;
let key;

before(async () => {
  server = await TestServer.start();
  browser = await launchBrowser();
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

const keyRow = (name) => page.locator(`[data-testid="keys-table"] tr[data-key-name="${name}"]`);

test('a new key is shown once with a copy button, and a service sends with it', async () => {
  await goTo(page, '/apikeys', 'API keys');
  await page.getByLabel('Name').fill('billing');
  await page.getByTestId('key-create').click();
  key = (await page.getByTestId('key-value').textContent()).trim();
  assert.match(key, /^sbk_/);
  await page.getByTestId('key-copy').click();
  await page.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  await keyRow('billing').waitFor();
  assert.match(await keyRow('billing').getByTestId('key-last-used').textContent(), /never/);

  const sent = await server.http('POST', '/api/websocket/send/toAll', { apiKey: key, body: { event: 'invoice-paid', data: { id: 7 } } });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.ok(sent.body.delivered >= 1, 'the admin panel itself is connected');
  // The panel's own socket got the push.
  await goTo(page, '/dashboard', 'Dashboard');
  await page.locator('[data-testid="event-log"] [data-event="invoice-paid"]').first().waitFor();

  // The server records the use off the request's path: wait until it has, then look.
  const { token } = await server.login();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const keys = await server.http('GET', '/api/apikeys', { token });
    if (keys.body.find?.((k) => k.name === 'billing')?.lastUsedAt) break;
    assert.ok(Date.now() < deadline, `last use never recorded: ${JSON.stringify(keys.body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await goTo(page, '/apikeys', 'API keys');
  await keyRow('billing').getByTestId('key-last-used').locator('time').waitFor();
  assert.equal(await page.getByTestId('key-value').count(), 0, 'the key is not shown again');
  assertNoPageErrors(page);
});

test('the audit page lists that send, and the filters narrow it', async () => {
  await goTo(page, '/audit', 'Audit log');
  const sendRow = page.locator('[data-testid="audit-table"] tr[data-action="send"][data-actor="apikey:billing"]');
  await sendRow.waitFor();
  const text = await sendRow.textContent();
  assert.match(text, /invoice-paid/);
  assert.match(text, /all/);
  assert.match(text, /127\.0\.0\.1/);

  await page.getByLabel('Action').selectOption('apikey.create');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('[data-testid="audit-table"] tr[data-action="apikey.create"]').first().waitFor();
  await page.locator('[data-testid="audit-table"] tr[data-action="send"]').waitFor({ state: 'detached' });

  await page.getByLabel('Action').selectOption('');
  await page.getByLabel('Actor').fill('nobody-at-all');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('No records match these filters.').waitFor();
  assertNoPageErrors(page);
});

test('a failed login is in the audit log', async () => {
  const r = await server.http('POST', '/api/auth/login', { body: { username: 'admin', password: 'wrong-password' } });
  assert.equal(r.status, 401);
  // The audit writer stores entries in batches off the request path: wait until this one is
  // stored before the page searches for it.
  const { token } = await server.login();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = await server.http('GET', '/api/audit?action=login&pageSize=100', { token });
    if (JSON.stringify(found.body?.list ?? []).includes('invalid_credentials')) break;
    assert.ok(Date.now() < deadline, `the failed login was never stored: ${JSON.stringify(found.body)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  await goTo(page, '/audit', 'Audit log');
  await page.getByLabel('Actor').fill('');
  await page.getByLabel('Action').selectOption('login');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('[data-testid="audit-table"] tr[data-action="login"]', { hasText: 'invalid_credentials' }).first().waitFor();
  assertNoPageErrors(page);
});

test('revoking a key stops it at once', async () => {
  await goTo(page, '/apikeys', 'API keys');
  await keyRow('billing').getByRole('button', { name: 'Revoke billing' }).click();
  await page.getByTestId('key-revoke-confirm').click();
  await keyRow('billing').waitFor({ state: 'detached' });
  const sent = await server.http('POST', '/api/websocket/send/toAll', { apiKey: key, body: { event: 'x' } });
  assert.equal(sent.status, 401);
  assertNoPageErrors(page);
});
