// Takes a 1280×800 screenshot of each panel page into web/screenshots/, against a real server
// (same start-up as the browser tests):  SWITCHBOARD_BIN=… node web/tests/screenshots.mjs

import fs from 'node:fs';
import path from 'node:path';
import { TestServer, WEB_DIR } from './lib/server.mjs';
import { launchBrowser } from './lib/browser.mjs';
import { newPage, loginThroughForm, goTo, assertNoPageErrors } from './lib/panel.mjs';

const OUT = path.join(WEB_DIR, 'screenshots');
fs.mkdirSync(OUT, { recursive: true });

const server = await TestServer.start();
const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });

async function shot(page, name) {
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.waitForTimeout(250); // let transitions settle
  await page.screenshot({ path: path.join(OUT, `${name}.png`) });
  console.log(`wrote screenshots/${name}.png`);
}

async function dismissToasts(page) {
  await page.evaluate(() => document.querySelectorAll('#toasts .toast').forEach((t) => t.remove()));
}

try {
  const { token } = await server.login();
  for (const [username, roles] of [['mia', ['member']], ['oscar', ['operator']]]) {
    const res = await server.http('POST', '/api/users', { token, body: { username, password: `${username}-Password-1`, roles } });
    if (res.status !== 201) throw new Error(`creating ${username}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  // Other people online, in tags, so the lists have something to show.
  const others = [];
  for (const username of ['mia', 'oscar']) {
    const p = await newPage(browser.context);
    await loginThroughForm(p, server, username, `${username}-Password-1`);
    await p.evaluate(() => window.switchboardPanel.socket.join('room-42'));
    others.push(p);
  }
  await others[0].evaluate(() => window.switchboardPanel.socket.join('hgexample:clock'));

  const page = await newPage(browser.context);
  await page.goto(`${server.url}/#/login`);
  await page.getByLabel('Username').waitFor();
  await page.getByLabel('Username').fill('admin');
  await shot(page, 'login');

  await page.getByLabel('Password').fill(server.adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/#\/dashboard$/);
  await page.locator('[data-testid="conn-status"][data-state="open"]').waitFor();
  const me = await page.evaluate(() => window.switchboardPanel.session.user);
  await page.evaluate(() => window.switchboardPanel.socket.join('room-42'));
  for (const [event, data] of [
    ['notice', { title: 'Backup finished', message: 'Nightly backup completed in 4 min 12 s' }],
    ['order/paid', { orderId: 98121, amount: '49.90', currency: 'EUR' }],
    ['notice', { title: 'Deploy', message: 'Version 2.3.1 is live on all nodes' }],
  ]) {
    await server.http('POST', '/api/websocket/send/toUser', { token, body: { userId: me.id, event, data } });
  }
  await server.http('POST', '/api/websocket/send/toTag', { token, body: { tag: 'room-42', event: 'chat/message', data: { from: 'oscar', text: 'Standup in 5 minutes' } } });
  await page.locator('[data-testid="event-log"] [data-event="chat/message"]').waitFor();
  await page.waitForFunction(() => /ms$/.test(document.querySelector('[data-testid="latency"]').textContent));
  await dismissToasts(page);
  await shot(page, 'dashboard');

  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, 'dashboard-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  await goTo(page, '/online', 'Online users');
  await page.locator('[data-testid="online-table"] tbody tr[data-client-id]').nth(2).waitFor();
  await shot(page, 'online');

  await goTo(page, '/send', 'Send a message');
  await page.getByRole('radio', { name: 'User' }).check();
  await page.getByRole('button', { name: 'Fill in my user ID' }).click();
  await page.getByLabel('Data (JSON)').fill(JSON.stringify({ title: 'Hello from the send page', message: 'This notice went to every device of user admin.' }, null, 2));
  await page.getByTestId('send-submit').click();
  await page.getByTestId('delivered').waitFor();
  await page.locator('[data-testid="toast"][data-event="notice"]').waitFor();
  await shot(page, 'send');
  await dismissToasts(page);

  await goTo(page, '/tags', 'Tags');
  await page.locator('tr[data-tag="room-42"]').waitFor();
  await shot(page, 'tags');

  await goTo(page, '/hgexample', 'hgexample addon');
  await page.getByTestId('hg-send').click();
  await page.getByTestId('hg-reply-data').waitFor();
  await page.getByTestId('hg-clock-toggle').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="hg-clock"]').textContent !== '—', null, { timeout: 8000 }).catch(() => {
    console.log('(no clock push within 8 s; taking the hgexample screenshot without it)');
  });
  await dismissToasts(page);
  await shot(page, 'hgexample');

  await goTo(page, '/monitor', 'Monitor');
  const flow = setInterval(() => {
    server.http('POST', '/api/websocket/send/toTag', { token, body: { tag: 'room-42', event: 'chat/message', data: { text: 'load' } } }).catch(() => {});
  }, 100);
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-messages"]').dataset.samples) >= 8, null, { timeout: 30000 });
  clearInterval(flow);
  await shot(page, 'monitor');

  await goTo(page, '/users', 'Users');
  await page.locator('[data-testid="users-table"] tr[data-username="oscar"]').waitFor();
  await shot(page, 'users');

  await goTo(page, '/apikeys', 'API keys');
  await page.getByLabel('Name').fill('billing-service');
  await page.getByTestId('key-create').click();
  await page.getByTestId('key-value').waitFor();
  await shot(page, 'apikeys');

  await goTo(page, '/audit', 'Audit log');
  await page.locator('[data-testid="audit-table"] tr[data-action]').nth(3).waitFor();
  await shot(page, 'audit');
  assertNoPageErrors(page);
} finally {
  await browser.close();
  await server.dispose();
}
