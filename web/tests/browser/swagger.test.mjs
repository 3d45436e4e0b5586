// Swagger UI as an operator uses it: log in from the page, authorize with the token, send a
// notice to my own user, and see it arrive on my open panel socket.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm } from '../lib/panel.mjs';

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

/** The expanded operation block for METHOD PATH, with "Try it out" enabled. */
async function openOperation(page, method, path) {
  const block = page.locator(`.opblock-${method}`).filter({
    has: page.locator(`.opblock-summary-path[data-path="${path}"]`),
  });
  await block.locator('.opblock-summary').first().click();
  await block.locator('button.try-out__btn').click();
  return block;
}

async function execute(block, body) {
  await block.locator('textarea.body-param__text').fill(JSON.stringify(body));
  await block.locator('button.execute').click();
  const status = block.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor();
  const text = await block.locator('.live-responses-table .response-col_description pre').first().textContent();
  return { status: Number((await status.textContent()).trim()), body: JSON.parse(text) };
}

test('from Swagger UI: log in, authorize, send a notice to my own open socket', async () => {
  // My open socket: the panel, logged in as admin.
  const panel = await newPage(browser.context);
  await loginThroughForm(panel, server, 'admin', server.adminPassword);

  const swagger = await browser.context.newPage();
  await swagger.goto(`${server.url}/swagger`);
  await swagger.locator('.opblock').first().waitFor();

  const login = await openOperation(swagger, 'post', '/api/auth/login');
  const loggedIn = await execute(login, { username: 'admin', password: server.adminPassword });
  assert.equal(loggedIn.status, 200);
  const token = loggedIn.body.token;
  assert.ok(token, 'the login response carries a token');

  await swagger.locator('button.authorize').first().click();
  const bearer = swagger.locator('.auth-container').filter({ hasText: 'BearerJwt' });
  await bearer.locator('input').first().fill(token);
  await bearer.locator('button.authorize').click();
  await swagger.locator('.modal-ux button.btn-done, .modal-ux button.close-modal').first().click();

  const me = await openOperation(swagger, 'get', '/api/auth/me');
  await me.locator('button.execute').click();
  const meStatus = me.locator('.live-responses-table .response .response-col_status').first();
  await meStatus.waitFor();
  assert.equal(Number((await meStatus.textContent()).trim()), 200, '/api/auth/me works with the token');

  const send = await openOperation(swagger, 'post', '/api/websocket/send/toUser');
  const sent = await execute(send, {
    userId: loggedIn.body.user.id,
    event: 'notice',
    data: { title: 'From Swagger', message: 'sent through the API docs' },
  });
  assert.equal(sent.status, 200);
  assert.ok(sent.body.delivered >= 1, `delivered ${sent.body.delivered}`);

  const toast = panel.locator('[data-testid="toast"][data-event="notice"]');
  await toast.waitFor();
  assert.match(await toast.textContent(), /sent through the API docs/);
});
