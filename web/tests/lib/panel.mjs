// Page-level helpers shared by the browser tests and the screenshot script.

/** A new tab that records uncaught page errors (tests assert there are none). */
export async function newPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|WebSocket connection to/.test(msg.text())) page.errors.push(new Error(`console: ${msg.text()}`));
  });
  return page;
}

/** The header's connection pill. */
export const connStatus = (page) => page.locator('[data-testid="conn-status"]');

/** Wait until the header says the socket is in `state` (open, reconnecting, closed…). */
export async function waitForConnState(page, state, timeout = 15000) {
  await page.locator(`[data-testid="conn-status"][data-state="${state}"]`).waitFor({ timeout });
}

/** Open the panel and log in through the form; resolves once the socket is connected. */
export async function loginThroughForm(page, server, username, password) {
  await page.goto(`${server.url}/#/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/#\/dashboard$/);
  await waitForConnState(page, 'open');
}

/** The client id the header shows (from the `connected` greeting). */
export async function shownClientId(page) {
  return (await page.locator('[data-testid="conn-client-id"]').textContent()).trim();
}

/** Go to a page of the panel by its hash route and wait for its heading. */
export async function goTo(page, route, heading) {
  await page.evaluate((r) => { location.hash = r; }, `#${route}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** Fail with the page's recorded errors, if any. */
export function assertNoPageErrors(page) {
  if (page.errors && page.errors.length) {
    throw new Error(`page errors:\n${page.errors.map((e) => e.stack || e.message).join('\n')}`);
  }
}
