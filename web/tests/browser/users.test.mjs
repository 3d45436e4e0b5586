// The Users page (admin): create a user and log in as it; change roles; disabling a user
// closes their open panel at once; reset password; delete; search.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let adminBrowser;
let userBrowser;
let admin;

before(async () => {
  server = await TestServer.start();
  adminBrowser = await launchBrowser();
  // A second browser profile: the panel keeps its session in localStorage, per profile.
  userBrowser = await launchBrowser();
  admin = await newPage(adminBrowser.context);
  await loginThroughForm(admin, server, 'admin', server.adminPassword);
});

after(async () => {
  await adminBrowser?.close();
  await userBrowser?.close();
  await server?.dispose();
});

const row = (page, username) => page.locator(`[data-testid="users-table"] tr[data-username="${username}"]`);

test('an admin creates an operator, who logs in and sees the operator pages only', async () => {
  await goTo(admin, '/users', 'Users');
  await admin.getByLabel('Username').fill('olga');
  await admin.getByLabel('Password', { exact: true }).fill('Operator-pass-1');
  await admin.getByRole('checkbox', { name: 'member' }).uncheck();
  await admin.getByRole('checkbox', { name: 'operator' }).check();
  await admin.getByTestId('user-create').click();
  await row(admin, 'olga').waitFor();
  assert.match(await row(admin, 'olga').textContent(), /operator/);
  assert.match(await row(admin, 'olga').textContent(), /enabled/);

  const page = await newPage(userBrowser.context);
  await loginThroughForm(page, server, 'olga', 'Operator-pass-1');
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const name of ['Online users', 'Send', 'Monitor']) {
    assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 1, `${name} link`);
  }
  for (const name of ['Users', 'API keys', 'Audit log']) {
    assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 0, `no ${name} link`);
  }
  await page.evaluate(() => { location.hash = '#/users'; });
  await page.waitForURL(/#\/dashboard$/);
  await page.locator('[data-testid="toast"]', { hasText: 'needs the admin role' }).first().waitFor();
  assertNoPageErrors(page);
  await page.close();
});

test('a field the server refuses is named beside it', async () => {
  await goTo(admin, '/users', 'Users');
  await admin.getByLabel('Username').fill('bad name with spaces');
  await admin.getByLabel('Password', { exact: true }).fill('Operator-pass-1');
  await admin.getByTestId('user-create').click();
  const hint = admin.locator('.field-hint.is-error', { hasText: 'username' });
  await hint.waitFor();
  assertNoPageErrors(admin);
});

test('disabling a user closes their panel at once; enabling lets them back', async () => {
  const created = await server.http('POST', '/api/users', { token: (await server.login()).token, body: { username: 'dora', password: 'Member-pass-1', roles: ['member'] } });
  assert.equal(created.status, 201);
  const page = await newPage(userBrowser.context);
  await loginThroughForm(page, server, 'dora', 'Member-pass-1');

  await goTo(admin, '/dashboard', 'Dashboard');
  await goTo(admin, '/users', 'Users');
  await row(admin, 'dora').getByRole('button', { name: 'Disable dora' }).click();
  await row(admin, 'dora').locator('.badge', { hasText: 'disabled' }).waitFor();
  // Her socket is closed by the server (token revoked): the panel returns to the login page.
  await page.waitForURL(/#\/login$/, { timeout: 15000 });
  assert.equal((await server.http('POST', '/api/auth/login', { body: { username: 'dora', password: 'Member-pass-1' } })).status, 401);

  await row(admin, 'dora').getByRole('button', { name: 'Enable dora' }).click();
  await row(admin, 'dora').locator('.badge', { hasText: 'enabled' }).waitFor();
  assert.equal((await server.http('POST', '/api/auth/login', { body: { username: 'dora', password: 'Member-pass-1' } })).status, 200);
  assertNoPageErrors(page);
  await page.close();
});

test('roles, password reset, search and delete', async () => {
  await admin.getByRole('button', { name: 'Refresh' }).click();
  await row(admin, 'dora').getByRole('button', { name: 'Change roles of dora' }).click();
  const dialog = admin.getByTestId('user-dialog');
  await dialog.getByRole('checkbox', { name: 'operator' }).check();
  await dialog.getByTestId('user-dialog-confirm').click();
  await row(admin, 'dora').locator('.chip', { hasText: 'operator' }).waitFor();

  await row(admin, 'dora').getByRole('button', { name: 'Reset password of dora' }).click();
  await dialog.getByLabel('New password').fill('Brand-new-pass-2');
  await dialog.getByTestId('user-dialog-confirm').click();
  await admin.locator('[data-testid="toast"]', { hasText: 'Password changed' }).first().waitFor();
  assert.equal((await server.http('POST', '/api/auth/login', { body: { username: 'dora', password: 'Brand-new-pass-2' } })).status, 200);

  await admin.getByRole('searchbox', { name: 'Search users' }).fill('dor');
  assert.equal(await admin.locator('[data-testid="users-table"] tbody tr').count(), 1);
  await admin.getByRole('searchbox', { name: 'Search users' }).fill('');

  await row(admin, 'dora').getByRole('button', { name: 'Delete dora' }).click();
  await dialog.getByTestId('user-dialog-confirm').click();
  await row(admin, 'dora').waitFor({ state: 'detached' });
  const { body } = await server.http('GET', '/api/users', { token: (await server.login()).token });
  assert.ok(!body.some((u) => u.username === 'dora'));
  // An admin cannot disable or delete themselves from here.
  assert.equal(await row(admin, 'admin').getByRole('button', { name: 'Delete admin' }).isDisabled(), true);
  assertNoPageErrors(admin);
});
