// The Monitor page (operator): live charts over the socket; they move when messages flow.
// The dashboard shows the cluster-wide totals beside the panel's own connection.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { newPage, loginThroughForm, goTo, assertNoPageErrors } from '../lib/panel.mjs';

let server;
let browser;
let page;
let token;

before(async () => {
  server = await TestServer.start();
  browser = await launchBrowser();
  page = await newPage(browser.context);
  await loginThroughForm(page, server, 'admin', server.adminPassword);
  token = (await server.login()).token;
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

const samples = async (testid) => Number(await page.getByTestId(testid).getAttribute('data-samples'));
const lastValue = async (testid, series) => Number(await page.locator(`[data-testid="${testid}"] .chart-value[data-series="${series}"]`).getAttribute('data-value'));

test('the charts fill every 2 s and the messages chart moves when messages flow', async () => {
  await goTo(page, '/monitor', 'Monitor');
  await page.getByTestId('mon-nodes').filter({ hasText: '1' }).waitFor();
  assert.equal(await page.getByTestId('mon-connections').textContent(), '1', 'the panel itself');
  const start = await samples('chart-messages');
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="chart-messages"]').dataset.samples) > n, start, { timeout: 10000 });

  // Traffic: pushes to everyone (the panel's socket receives them).
  const flow = setInterval(() => {
    server.http('POST', '/api/websocket/send/toAll', { token, body: { event: 'load', data: 'x'.repeat(200) } }).catch(() => {});
  }, 50);
  try {
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-messages"] .chart-value[data-series="messagesOutPerSec"]').dataset.value) > 5, null, { timeout: 15000 });
  } finally {
    clearInterval(flow);
  }
  assert.ok(await lastValue('chart-bytes', 'bytesOutPerSec') > 0);
  const points = await page.locator('[data-testid="chart-messages"] polyline[data-series="messagesOutPerSec"]').getAttribute('points');
  assert.ok(points.split(' ').length >= 3, points);
  assert.equal(await page.locator('[data-testid="mon-node-table"] tbody tr').count(), 1);
  // Monitor pushes are charted, not logged on the dashboard.
  await goTo(page, '/dashboard', 'Dashboard');
  assert.equal(await page.locator('[data-testid="event-log"] [data-event^="admin/monitor/"]').count(), 0);
  assertNoPageErrors(page);
});

test('the dashboard shows the totals of every connection', async () => {
  await goTo(page, '/dashboard', 'Dashboard');
  await page.getByTestId('total-connections').filter({ hasText: '1' }).waitFor();
  assert.equal(await page.getByTestId('total-users').textContent(), '1');
  assertNoPageErrors(page);
});
