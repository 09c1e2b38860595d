// In Chromium: sign up, log in, see the Log out button, log out, and the token the page held
// is refused by the server. Errors in plain words, offline logout, and the page's headers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { assertNoTokenReadable, browserSuite, logIn, meStatus, openDevice, PASSWORD, screenshot, signUp, startServer, type Device, type Server } from './support.ts';

describe('browser: sign up, log in, log out', browserSuite(), () => {
  let server: Server;
  let device: Device;
  let page: Page;
  before(async () => {
    server = await startServer();
    device = await openDevice(server);
    page = await device.page();
  });
  after(async () => {
    await device?.close();
    await server?.close();
  });

  it('signs up and lands on the account page with a visible Log out button', async () => {
    await page.goto(server.url);
    await page.getByLabel('Username', { exact: true }).waitFor();
    await screenshot(page, 'login');
    await assertNoTokenReadable(page, device, 'before login');
    await signUp(page, server, 'alice');
    const logOut = page.getByRole('button', { name: 'Log out', exact: true });
    assert.ok(await logOut.isVisible());
    // at the top: within the first screenful, above the page heading
    const box = await logOut.boundingBox();
    assert.ok(box && box.y < 80, `Log out sits at the top (y=${box?.y})`);
    await page.getByRole('heading', { level: 1, name: /alice/ }).waitFor();
    await page.getByRole('cell', { name: /This browser/ }).waitFor();
    await page.getByRole('button', { name: 'Log out everywhere', exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Revoke', exact: true }).count(), 1);
    assert.match((await page.getByRole('timer').textContent()) ?? '', /Next silent refresh in \d+ s/);
    await screenshot(page, 'account');
    // the same page in dark mode and on a phone-sized screen
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'account-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 390, height: 800 });
    await screenshot(page, 'account-narrow');
    assert.ok(await page.getByRole('button', { name: 'Log out', exact: true }).isVisible(), 'Log out stays visible on a small screen');
    await page.setViewportSize({ width: 1200, height: 820 });
    await assertNoTokenReadable(page, device, 'after sign-up');
  });

  it('logs out: the login form returns, and the token the page held is refused by the server', async () => {
    const held = device.accessTokens.at(-1)!;
    assert.ok(held, 'the page sent an access token');
    assert.equal(await meStatus(server, held), 200);
    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    await page.getByLabel('Username', { exact: true }).waitFor();
    await page.getByText('You have logged out.').waitFor();
    await screenshot(page, 'logged-out');
    assert.equal(await meStatus(server, held), 401, 'refused at once, long before it expires');
    assert.equal((await device.context.cookies()).find((c) => c.name === 'latch_refresh'), undefined, 'the refresh cookie is gone');
    await assertNoTokenReadable(page, device, 'after logout');
    // a reload shows the login form: nothing is left to resume
    await page.reload();
    await page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Log out', exact: true }).count(), 0);
  });

  it('logs in again with the account, and a reload keeps the session (from the HttpOnly cookie)', async () => {
    await logIn(page, server, 'alice');
    await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    await page.reload();
    await page.getByRole('heading', { level: 1, name: /alice/ }).waitFor();
    await assertNoTokenReadable(page, device, 'after reload');
    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    await page.getByLabel('Username', { exact: true }).waitFor();
  });

  it('says what went wrong in plain words', async () => {
    await logIn(page, server, 'alice', 'not the password');
    await page.getByRole('alert').getByText('Wrong username or password.').waitFor();
    await screenshot(page, 'error-wrong-password');

    await page.getByLabel('Username', { exact: true }).fill('alice');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account', exact: true }).click();
    await page.getByRole('alert').getByText(/That username is taken/).waitFor();

    // the server's answers for a locked account and for throttling, word for word as the API sends them
    await page.route('**/v1/login', (route) =>
      route.fulfill({
        status: 423,
        contentType: 'application/problem+json',
        body: JSON.stringify({ type: 'https://latch.dev/errors/account_locked', title: 'The account is locked', status: 423, code: 'account_locked', locked_until: '2030-06-01T12:00:00.000Z' }),
      }),
    );
    await page.getByRole('button', { name: 'Log in', exact: true }).click();
    await page.getByRole('alert').getByText(/This account is locked until .*2030/).waitFor();
    await screenshot(page, 'error-locked');
    await page.unroute('**/v1/login');
    await page.route('**/v1/login', (route) =>
      route.fulfill({
        status: 429,
        headers: { 'retry-after': '42' },
        contentType: 'application/problem+json',
        body: JSON.stringify({ type: 'https://latch.dev/errors/too_many_attempts', title: 'Too many failed attempts', status: 429, code: 'too_many_attempts', retry_after: 42 }),
      }),
    );
    await page.getByRole('button', { name: 'Log in', exact: true }).click();
    await page.getByRole('alert').getByText(/Too many attempts\. Try again in 4[12] s\./).waitFor();
    // it counts down by itself
    await page.getByRole('alert').getByText(/Try again in (39|40) s\./).waitFor({ timeout: 5_000 });
    await screenshot(page, 'error-too-many-attempts');
    await page.unroute('**/v1/login');
  });

  it('offline logout clears the page, says so, keeps only a flag, and the next load logs out on the server first', async () => {
    await logIn(page, server, 'alice');
    await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    const held = device.accessTokens.at(-1)!;
    await device.context.setOffline(true);
    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    await page.getByText(/the server could not be reached/).waitFor();
    await screenshot(page, 'offline-logout');
    const stored = await page.evaluate(() => Object.keys(localStorage).map((k) => [k, localStorage.getItem(k)]));
    assert.deepEqual(stored, [['latch.logout_pending', 'session']], 'a flag, never a token');
    await assertNoTokenReadable(page, device, 'offline logout');
    assert.equal(await meStatus(server, held), 200, 'the server has not heard of it yet');

    // the tab is closed while offline; the page is opened again later, online
    await page.close();
    await device.context.setOffline(false);
    const from = device.sent.length;
    page = await device.context.newPage();
    await page.goto(server.url);
    await page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
    await page.waitForFunction(() => localStorage.length === 0);
    const calls = device.sent.slice(from).filter((s) => s.path.startsWith('/v1/'));
    assert.equal(calls[0]?.path, '/v1/logout', 'the logout goes first');
    assert.ok(!calls.some((c) => c.path === '/v1/refresh'), 'and the session is never refreshed');
    assert.equal(await meStatus(server, held), 401);
  });

  it('offline logout in a page that stays open is sent as soon as the browser is back online', async () => {
    await logIn(page, server, 'alice');
    await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    const held = device.accessTokens.at(-1)!;
    await device.context.setOffline(true);
    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    await page.getByText(/the server could not be reached/).waitFor();
    await device.context.setOffline(false);
    await page.getByText('You have logged out.').waitFor({ timeout: 5_000 });
    assert.equal(await meStatus(server, held), 401);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
  });

  it('serves the page with a strict CSP and no inline script', async () => {
    const res = await fetch(server.url);
    const html = await res.text();
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script is an external file');
    assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handlers');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from a CDN');
  });
});
