// Role decides which pages show: a member sees the dashboard and hgexample only, not the
// operator pages nor the admin pages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let browser;

before(async () => {
  server = await TestServer.start();
  browser = await launchBrowser();
  const { token } = await server.login();
  const created = await server.http('POST', '/api/users', { token, body: { username: 'mia', password: 'Member-pass-1', roles: ['member'] } });
  assert.equal(created.status, 201, `POST /api/users → ${created.status} ${JSON.stringify(created.body)}`);
  assert.deepEqual(created.body.roles, ['member']);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('a member does not see operator pages', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'mia', 'Member-pass-1');
  const nav = page.getByRole('navigation', { name: 'Main' });
  assert.equal(await nav.getByRole('link', { name: 'Dashboard' }).count(), 1);
  assert.equal(await nav.getByRole('link', { name: 'hgexample' }).count(), 1);
  for (const name of ['Online users', 'Send', 'Tags', 'Monitor', 'Users', 'API keys', 'Audit log']) {
    assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 0, `no ${name} link`);
  }
  assert.match(await page.getByTestId('user-name').textContent(), /mia/);

  // Typing the address of an operator page does not show it either.
  for (const [route, role] of [['#/online', 'operator'], ['#/send', 'operator'], ['#/tags', 'operator'], ['#/monitor', 'operator'], ['#/users', 'admin'], ['#/apikeys', 'admin'], ['#/audit', 'admin']]) {
    await page.evaluate((r) => { location.hash = r; }, route);
    await page.waitForURL(/#\/dashboard$/);
    await page.locator('[data-testid="toast"]', { hasText: `needs the ${role} role` }).first().waitFor();
  }
  // Nor the cluster totals (they need the operator role).
  assert.equal(await page.getByTestId('total-connections').count(), 0);
  assert.equal(await page.getByRole('heading', { level: 1, name: 'Online users' }).count(), 0);
  assertNoPageErrors(page);
  await page.close();
});

test('a member can use the hgexample page', async () => {
  const page = await newPage(browser.context);
  await loginThroughForm(page, server, 'mia', 'Member-pass-1');
  await goTo(page, '/hgexample', 'hgexample addon');
  await page.getByLabel('Data (JSON)').fill('{"ping": "from a member"}');
  await page.getByTestId('hg-send').click();
  const reply = page.getByTestId('hg-reply-data');
  await reply.waitFor();
  assert.deepEqual(JSON.parse(await reply.textContent()), { ping: 'from a member' });
  assertNoPageErrors(page);
  await page.close();
});
