// The event catalogue: every event of the AsyncAPI document is listed with its schemas, and a
// request sent from the page goes over the panel's own socket and shows the reply.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, assertNoPageErrors } from '../lib/panel.mjs';

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

test('every operation of /api/asyncapi.json is in the catalogue, with its schemas', async () => {
  const doc = await server.http('GET', '/api/asyncapi.json');
  assert.equal(doc.status, 200);
  await goTo(page, '/events', 'Events');
  const catalogue = page.getByTestId('event-catalogue');
  await catalogue.locator('details').first().waitFor();
  for (const op of Object.values(doc.body.operations)) {
    const entry = catalogue.locator(`details[data-event="${op['x-switchboard-event']}"][data-action="${op.action}"]`);
    assert.equal(await entry.count(), 1, `${op.action} ${op['x-switchboard-event']} is listed once`);
  }
  const join = catalogue.locator('details[data-event="join"][data-action="send"]');
  await join.locator('summary').click();
  const request = JSON.parse(await join.getByTestId('request-schema').textContent());
  assert.deepEqual(request.required, ['id'], 'the $ref to the join request type is resolved');
  assertNoPageErrors(page);
});

test('try it: the hgexample echo answers over my socket', async () => {
  await goTo(page, '/events', 'Events');
  const echo = page.locator('details[data-event="admin/addons/hgexample/testMessage"][data-action="send"]');
  await echo.locator('summary').click();
  await echo.getByTestId('try-data').fill('{"hello": "catalogue"}');
  await echo.getByTestId('try-send').click();
  await echo.getByTestId('try-reply').filter({ hasText: 'catalogue' }).waitFor();
  const reply = JSON.parse(await echo.getByTestId('try-reply').textContent());
  assert.deepEqual([reply.event, reply.code, reply.data], ['admin/addons/hgexample/testMessage', 0, { hello: 'catalogue' }]);
  assertNoPageErrors(page);
});
