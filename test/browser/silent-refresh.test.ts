// In Chromium, with a 10 s access token and the UI's 20 s leeway (so a refresh every 2.5 s):
// the page keeps working across three token lifetimes, never sends an expired token, and the
// tokens it no longer uses do expire on the server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { assertNoTokenReadable, browserSuite, expOf, meStatus, openDevice, screenshot, signUp, startServer, type Device, type Server } from './support.ts';

const ACCESS_TTL_S = 10;
const WATCH_MS = 32_000;

describe('browser: silent refresh across several expiries', browserSuite(), () => {
  let server: Server;
  let device: Device;
  let page: Page;
  before(async () => {
    server = await startServer({ accessTtl: ACCESS_TTL_S });
    device = await openDevice(server);
    page = await device.page();
  });
  after(async () => {
    await device?.close();
    await server?.close();
  });

  it('keeps the page working for three token lifetimes, with a fresh token on every call', async () => {
    await signUp(page, server, 'patience');
    const first = device.accessTokens.at(-1)!;
    const from = device.sent.length;
    const started = Date.now();
    let calls = 0;
    while (Date.now() - started < WATCH_MS) {
      await page.waitForTimeout(3_000);
      // an API call with whatever token the page holds now
      const reply = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/sessions');
      await page.getByRole('button', { name: 'Reload list', exact: true }).click();
      assert.equal((await reply).status(), 200, `call ${++calls}`);
      await page.getByRole('cell', { name: /This browser/ }).waitFor();
      if (calls === 4) await screenshot(page, 'silent-refresh');
      await assertNoTokenReadable(page, device, `after ${calls} calls`);
    }
    const sent = device.sent.slice(from);
    const refreshes = sent.filter((s) => s.path === '/v1/refresh').length;
    // every 2.5 s over 32 s; generous bounds for a loaded machine
    assert.ok(refreshes >= 8 && refreshes <= 16, `${refreshes} silent refreshes`);
    const withToken = sent.filter((s) => s.token !== null);
    assert.ok(withToken.length >= calls);
    for (const s of withToken) assert.ok(expOf(s.token!) * 1000 > s.at, `a token was sent ${s.at - expOf(s.token!) * 1000} ms after its exp`);
    const tokensUsed = new Set(withToken.map((s) => s.token));
    assert.ok(tokensUsed.size >= 5, `${tokensUsed.size} different access tokens were used`);
    assert.deepEqual(
      device.statuses.filter((s) => s.status === 401),
      [],
      'the server never had to refuse the page',
    );
    // the first token has long expired (10 s + 5 s skew), while the page still works
    assert.equal(await meStatus(server, first), 401);
    assert.equal(await meStatus(server, device.accessTokens.at(-1)!), 200);
    assert.match((await page.getByRole('timer').textContent()) ?? '', /Next silent refresh in [0-3] s/);
  });
});
