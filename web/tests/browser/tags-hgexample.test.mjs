// The tags page (join/quit for my connection over the socket) and the hgexample echo.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, shownClientId, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let browser;
let page;

before(async () => {
  server = await TestServer.start();
  browser = await launchBrowser();
  page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('joining a tag shows it with one member, and the server agrees', async () => {
  await goTo(page, '/tags', 'Tags');
  await page.getByTestId('join-tag').fill('room-42');
  await page.getByTestId('join-submit').click();
  const row = page.locator('tr[data-tag="room-42"]');
  await row.waitFor();
  assert.equal((await row.getByTestId('members').textContent()).trim(), '1');
  assert.match(await page.getByTestId('my-tags').textContent(), /room-42/);

  const { token } = await server.login();
  const tags = await server.http('GET', '/api/websocket/tags', { token });
  assert.equal(tags.status, 200);
  const entry = tags.body.find((t) => t.tag === 'room-42');
  assert.ok(entry, 'GET /api/websocket/tags lists room-42');

  const myId = await shownClientId(page);
  const online = await server.http('GET', '/api/websocket/online?tag=room-42', { token });
  assert.deepEqual(online.body.list.map((c) => String(c.id)), [myId]);
});

test('a push to the tag reaches the panel', async () => {
  const { token } = await server.login();
  const sent = await server.http('POST', '/api/websocket/send/toTag', { token, body: { tag: 'room-42', event: 'notice', data: { title: 'Room news', message: 'for room-42' } } });
  assert.equal(sent.status, 200);
  assert.equal(sent.body.delivered, 1);
  await page.locator('[data-testid="toast"]', { hasText: 'for room-42' }).waitFor();
});

test('quitting the tag removes it', async () => {
  await goTo(page, '/tags', 'Tags');
  await page.locator('tr[data-tag="room-42"]').getByRole('button', { name: 'Quit room-42' }).click();
  await page.locator('tr[data-tag="room-42"]').waitFor({ state: 'detached' });
  assert.doesNotMatch(await page.getByTestId('my-tags').textContent(), /room-42/);
});

test('an invalid or sys: tag is refused before it is sent', async () => {
  await goTo(page, '/tags', 'Tags');
  const input = page.getByTestId('join-tag');
  await input.fill('has space');
  await page.getByTestId('join-submit').click();
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
  await input.fill('sys:admin');
  await page.getByTestId('join-submit').click();
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
});

test('hgexample testMessage is echoed back', async () => {
  await goTo(page, '/hgexample', 'hgexample addon');
  const payload = { message: 'echo me', n: 7, nested: { ok: true } };
  await page.getByLabel('Data (JSON)').fill(JSON.stringify(payload));
  await page.getByTestId('hg-send').click();
  const reply = page.getByTestId('hg-reply-data');
  await reply.waitFor();
  assert.deepEqual(JSON.parse(await reply.textContent()), payload);
  assertNoPageErrors(page);
});
