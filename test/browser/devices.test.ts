// In Chromium, two devices (two browser profiles, so two cookie jars): revoking the other one
// from the sessions table ends its session, and that page tells its user so. Then "Log out
// everywhere" ends every device.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { assertNoTokenReadable, browserSuite, logIn, meStatus, openDevice, PASSWORD, screenshot, signUp, startServer, type Device, type Server } from './support.ts';

describe('browser: sessions on two devices', browserSuite(), () => {
  let server: Server;
  let laptop: Device;
  let phone: Device;
  let laptopPage: Page;
  let phonePage: Page;
  before(async () => {
    server = await startServer();
    [laptop, phone] = await Promise.all([openDevice(server), openDevice(server)]);
    laptopPage = await laptop.page();
    phonePage = await phone.page();
  });
  after(async () => {
    await laptop?.close();
    await phone?.close();
    await server?.close();
  });

  const rows = (page: Page) => page.locator('tbody tr');

  it('revoking the other device from the table ends its session', async () => {
    await signUp(laptopPage, server, 'nomad');
    await logIn(phonePage, server, 'nomad');
    await phonePage.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    const phoneToken = phone.accessTokens.at(-1)!;
    assert.equal(await meStatus(server, phoneToken), 200);

    await laptopPage.getByRole('button', { name: 'Reload list', exact: true }).click();
    await rows(laptopPage).nth(1).waitFor();
    assert.equal(await rows(laptopPage).count(), 2);
    assert.equal(await laptopPage.getByText('This browser', { exact: true }).count(), 1, 'one row is marked as this browser');
    await screenshot(laptopPage, 'sessions-two-devices');
    const other = rows(laptopPage).filter({ hasNotText: 'This browser' });
    for (const header of ['Device', 'IP address', 'User agent', 'Created', 'Last seen']) await laptopPage.getByRole('columnheader', { name: header, exact: true }).waitFor();
    assert.match((await other.textContent()) ?? '', /127\.0\.0\.1/);
    await other.getByRole('button', { name: 'Revoke', exact: true }).click();
    await laptopPage.getByText(/Session ended: Chrome on Linux/).waitFor();
    await rows(laptopPage).nth(1).waitFor({ state: 'detached' });
    assert.equal(await rows(laptopPage).count(), 1);
    await screenshot(laptopPage, 'sessions-after-revoke');

    assert.equal(await meStatus(server, phoneToken), 401, "the phone's token is refused at once");
    // the phone finds out at its next call, and says so in plain words
    await phonePage.getByRole('button', { name: 'Reload list', exact: true }).click();
    await phonePage.getByText(/Your session ended elsewhere/).waitFor({ timeout: 5_000 });
    await phonePage.getByLabel('Username', { exact: true }).waitFor();
    await screenshot(phonePage, 'session-ended-elsewhere');
    assert.equal((await phone.context.cookies()).find((c) => c.name === 'latch_refresh'), undefined, 'its dead cookie was cleared');
    await assertNoTokenReadable(phonePage, phone, 'revoked device');
    await assertNoTokenReadable(laptopPage, laptop, 'revoking device');
  });

  it('"Log out everywhere" ends the session on every device, this one included', async () => {
    await logIn(phonePage, server, 'nomad');
    await phonePage.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    const phoneToken = phone.accessTokens.at(-1)!;
    await laptopPage.getByRole('button', { name: 'Log out everywhere', exact: true }).click();
    await laptopPage.getByLabel('Username', { exact: true }).waitFor();
    assert.equal(await meStatus(server, phoneToken), 401);
    assert.equal(await meStatus(server, laptop.accessTokens.at(-1)!), 401);
    await phonePage.getByRole('button', { name: 'Reload list', exact: true }).click();
    await phonePage.getByText(/Your session ended elsewhere/).waitFor({ timeout: 5_000 });
  });

  it('changing the password keeps this session and ends the other device', async () => {
    await logIn(laptopPage, server, 'nomad');
    await laptopPage.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    await logIn(phonePage, server, 'nomad');
    await phonePage.getByRole('button', { name: 'Log out', exact: true }).waitFor();
    const phoneToken = phone.accessTokens.at(-1)!;
    const doc = JSON.parse((await server.h.app.inject({ url: '/openapi.json' })).body) as { paths: Record<string, { post?: unknown }> };
    if (!doc.paths['/v1/password']?.post) {
      // a server without the endpoint: the form says so and cannot be used
      await laptopPage.getByText('Changing the password is not available on this server yet.').waitFor();
      assert.equal(await laptopPage.getByRole('button', { name: 'Change password', exact: true }).isDisabled(), true);
      return;
    }
    await laptopPage.getByLabel('Current password', { exact: true }).fill('not my password');
    await laptopPage.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
    await laptopPage.getByRole('button', { name: 'Change password', exact: true }).click();
    await laptopPage.getByText('The current password is wrong.').waitFor();
    await laptopPage.getByLabel('Current password', { exact: true }).fill(PASSWORD);
    await laptopPage.getByRole('button', { name: 'Change password', exact: true }).click();
    await laptopPage.getByText('Your password has been changed, and your other sessions were logged out.').waitFor();
    await screenshot(laptopPage, 'password-changed');
    assert.equal(await meStatus(server, phoneToken), 401);
    assert.equal(await rows(laptopPage).count(), 1);
    assert.equal(await laptopPage.getByRole('button', { name: 'Log out', exact: true }).count(), 1, 'this session goes on');
    await logIn(phonePage, server, 'nomad', 'a brand new passphrase');
    await phonePage.getByRole('button', { name: 'Log out', exact: true }).waitFor();
  });
});
