// In Chromium, two tabs of one browser: a logout in one shows the login form in the other
// within 2 s, and two tabs refreshing at the same moment keep the session alive. The server
// runs with no reuse grace window, so only the tabs taking turns can keep reuse detection quiet.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { assertNoTokenReadable, browserSuite, meStatus, openDevice, screenshot, signUp, type Device, type Server, startServer } from './support.ts';

describe('browser: two tabs', browserSuite(), () => {
  let server: Server;
  let device: Device;
  let first: Page;
  let second: Page;
  before(async () => {
    server = await startServer({ refreshReuseGrace: 0 });
    device = await openDevice(server);
    first = await device.page();
    second = await device.context.newPage();
  });
  after(async () => {
    await device?.close();
    await server?.close();
  });

  const openSecondTab = async (): Promise<void> => {
    await second.goto(server.url);
    // no password typed here: the tab resumes the session from the shared HttpOnly cookie
    await second.getByRole('button', { name: 'Log out', exact: true }).waitFor();
  };

  it('logging out in one tab shows the login form in the other within 2 s', async () => {
    let t = Date.now();
    await signUp(first, server, 'tabby');
    console.log('signup', Date.now() - t); t = Date.now();
    await openSecondTab();
    console.log('second', Date.now() - t); t = Date.now();
    await second.getByRole('heading', { level: 1, name: /tabby/ }).waitFor();
    await screenshot(second, 'second-tab-account');
    const secondToken = device.accessTokens.at(-1)!;
    assert.equal(await meStatus(server, secondToken), 200);

    await first.getByRole('button', { name: 'Log out', exact: true }).click();
    const started = Date.now();
    await second.getByLabel('Username', { exact: true }).waitFor({ timeout: 2_000 });
    const took = Date.now() - started;
    assert.ok(took < 2_000, `the other tab followed in ${took} ms`);
    await second.getByText('You logged out in another tab.').waitFor();
    await screenshot(second, 'second-tab-logged-out');
    assert.equal(await meStatus(server, secondToken), 401, "the other tab's token is dead too: one session, one logout");
    await second.reload();
    await second.getByRole('button', { name: 'Log in', exact: true }).waitFor();
    await assertNoTokenReadable(second, device, 'after logout in the other tab');
  });

  it('two tabs refreshing at the same moment keep the session alive: no reuse detected', async () => {
    await signUp(first, server, 'twins');
    await openSecondTab();
    const from = device.statuses.length;
    const refreshNow = (page: Page): Promise<void> =>
      page.evaluate(() => {
        const button = [...document.querySelectorAll('button')].find((b) => b.textContent === 'Refresh now');
        button?.click();
      });
    for (let round = 0; round < 5; round++) {
      const before = device.statuses.filter((s) => s.path === '/v1/refresh').length;
      // both clicks leave within the same millisecond or two
      await Promise.all([refreshNow(first), refreshNow(second)]);
      const deadline = Date.now() + 5_000;
      while (device.statuses.filter((s) => s.path === '/v1/refresh').length < before + 2 && Date.now() < deadline) await first.waitForTimeout(20);
    }
    const refreshes = device.statuses.slice(from).filter((s) => s.path === '/v1/refresh');
    assert.ok(refreshes.length >= 10, `${refreshes.length} refreshes`);
    assert.deepEqual(refreshes.filter((s) => s.status !== 200), [], 'every refresh succeeded');
    const audit = await server.h.opened.latch.store.listAudit(0, 1000);
    assert.equal(audit.filter((e) => e.type === 'refresh.reused').length, 0, 'reuse detection never fired');
    // both tabs are still logged in, each with its own live token
    for (const page of [first, second]) {
      await page.getByRole('button', { name: 'Reload list', exact: true }).click();
      await page.getByRole('cell', { name: /This browser/ }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Log out', exact: true }).count(), 1);
    }
    const lastTwo = device.sent.filter((s) => s.token !== null).slice(-2);
    for (const s of lastTwo) assert.equal(await meStatus(server, s.token!), 200);
    await assertNoTokenReadable(first, device, 'after concurrent refreshes');
    await assertNoTokenReadable(second, device, 'after concurrent refreshes');
  });
});
