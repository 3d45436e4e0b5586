// The send page: a notice to my own user shows a toast; the JSON editor validates.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, shownClientId, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let browser;
let page;
let me;

before(async () => {
  server = await TestServer.start();
  browser = await launchBrowser();
  page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  me = await page.evaluate(() => window.switchboardPanel.session.user);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('sending a notice to my own user shows a toast and the delivered count', async () => {
  await goTo(page, '/send', 'Send a message');
  await page.getByRole('radio', { name: 'User' }).check();
  await page.getByRole('button', { name: 'Fill in my user ID' }).click();
  assert.equal(await page.getByTestId('target-value').inputValue(), String(me.id));
  await page.getByLabel('Event').fill('notice');
  await page.getByLabel('Data (JSON)').fill(JSON.stringify({ title: 'Deploy finished', message: 'build 1234 is live' }));
  await page.getByTestId('send-submit').click();

  const toast = page.locator('[data-testid="toast"][data-event="notice"]');
  await toast.waitFor();
  const text = await toast.textContent();
  assert.match(text, /Deploy finished/);
  assert.match(text, /build 1234 is live/);

  await page.getByTestId('delivered').waitFor();
  const delivered = Number(await page.getByTestId('delivered').textContent());
  assert.ok(delivered >= 1, `delivered ${delivered}`);
  assertNoPageErrors(page);
});

test('the push shows in the dashboard live log with its data', async () => {
  await goTo(page, '/dashboard', 'Dashboard');
  const entry = page.locator('[data-testid="event-log"] [data-event="notice"]').first();
  await entry.waitFor();
  assert.match(await entry.textContent(), /build 1234 is live/);
});

test('a string notice is shown as the toast text', async () => {
  await goTo(page, '/send', 'Send a message');
  await page.getByRole('radio', { name: 'Connection' }).check();
  await page.getByRole('button', { name: 'Fill in the client ID of this tab' }).click();
  assert.equal(await page.getByTestId('target-value').inputValue(), await shownClientId(page));
  await page.getByLabel('Data (JSON)').fill('"plain text notice"');
  await page.getByTestId('send-submit').click();
  await page.locator('[data-testid="toast"][data-event="notice"]', { hasText: 'plain text notice' }).waitFor();
  assert.equal(await page.getByTestId('delivered').textContent(), '1');
});

test('invalid JSON is flagged and cannot be sent', async () => {
  await goTo(page, '/send', 'Send a message');
  const editor = page.getByLabel('Data (JSON)');
  await editor.fill('{"title": "x",');
  assert.equal(await editor.getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByTestId('send-submit').isDisabled(), true);
  const hint = await page.locator('#' + (await editor.getAttribute('aria-describedby'))).textContent();
  assert.match(hint, /Invalid JSON/);
  await editor.fill('{"title": "x"}');
  assert.equal(await editor.getAttribute('aria-invalid'), null);
  assert.equal(await page.getByTestId('send-submit').isDisabled(), false);
});

test('a server error is shown with its message', async () => {
  await goTo(page, '/send', 'Send a message');
  await page.getByRole('radio', { name: 'Connection' }).check();
  await page.getByTestId('target-value').fill('no-such-client-id');
  await page.getByLabel('Data (JSON)').fill('{}');
  await page.getByTestId('send-submit').click();
  const error = page.locator('[data-testid="send-result"] .alert-error');
  await error.waitFor();
  assert.ok((await error.textContent()).trim().length > 0);
  assertNoPageErrors(page);
});
