// Shared pieces of the browser tests: a real Latch listening on 127.0.0.1, Debian's Chromium
// driven by playwright-core with a fresh profile per "device", a log of every token that
// crossed the wire, and the check that none of them is readable from script storage.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { Config } from '../../src/config.ts';
import { harness, type Harness } from '../helpers.ts';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'screenshots');
export const PASSWORD = 'correct horse battery';

/**
 * describe() options: without Chromium the suite is skipped on a developer machine, but under
 * CI=true it runs and fails, so a missing browser can never pass for green.
 */
export function browserSuite(timeout = 90_000): { timeout: number; skip?: string } {
  if (existsSync(CHROMIUM_PATH) || process.env.CI) return { timeout };
  return { timeout, skip: `Chromium is not installed at ${CHROMIUM_PATH} (apt-get install chromium)` };
}

export interface Server {
  url: string;
  h: Harness;
  close(): Promise<void>;
}

/** A Latch started in this process, listening on a free port of 127.0.0.1. */
export async function startServer(overrides: Partial<Record<keyof Config, unknown>> = {}): Promise<Server> {
  const h = await harness(overrides);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const address = h.app.server.address();
  if (address === null || typeof address !== 'object') throw new Error('the server has no TCP address');
  return { url: `http://127.0.0.1:${address.port}`, h, close: () => h.close() };
}

export interface Sent {
  at: number;
  method: string;
  path: string;
  token: string | null;
}

/** One browser profile: its own cookie jar, storage and tabs, like one device. */
export interface Device {
  context: BrowserContext;
  /** access tokens seen in Authorization headers and token responses, oldest first */
  accessTokens: string[];
  /** refresh-cookie values the server set */
  refreshTokens: string[];
  /** every request to the server, in order */
  sent: Sent[];
  statuses: { path: string; status: number }[];
  page(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Wraps the storage and cookie setters so that a token written even once, then removed, is
 * still caught. A string, not a function: tsx's name helpers do not exist inside the page.
 */
const RECORD_SCRIPT_WRITES = `(() => {
  const writes = [];
  Object.defineProperty(window, '__latchWrites', { value: writes });
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    writes.push(key + '=' + value);
    return setItem.call(this, key, value);
  };
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  Object.defineProperty(Document.prototype, 'cookie', {
    configurable: true,
    get() { return cookie.get.call(this); },
    set(value) { writes.push('cookie:' + value); cookie.set.call(this, value); },
  });
})();`;

export async function openDevice(server: Server): Promise<Device> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`Chromium is missing at ${CHROMIUM_PATH}: install it with apt-get install chromium (.ci/run does)`);
  const profile = mkdtempSync(join(tmpdir(), 'latch-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 820 },
  });
  await context.addInitScript(RECORD_SCRIPT_WRITES);
  const device: Device = {
    context,
    accessTokens: [],
    refreshTokens: [],
    sent: [],
    statuses: [],
    async page() {
      const blank = context.pages().find((p) => p.url() === 'about:blank');
      const page = blank ?? (await context.newPage());
      page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
  const note = (token: string | null): void => {
    if (token && !device.accessTokens.includes(token)) device.accessTokens.push(token);
  };
  context.on('request', (request) => {
    if (!request.url().startsWith(server.url)) return;
    const auth = request.headers().authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : null;
    note(token);
    device.sent.push({ at: Date.now(), method: request.method(), path: new URL(request.url()).pathname, token });
  });
  context.on('response', async (response) => {
    if (!response.url().startsWith(server.url)) return;
    const path = new URL(response.url()).pathname;
    device.statuses.push({ path, status: response.status() });
    for (const header of await response.headersArray()) {
      const m = header.name.toLowerCase() === 'set-cookie' ? /^latch_refresh=([^;]+)/.exec(header.value) : null;
      if (m?.[1]) device.refreshTokens.push(m[1]);
    }
    if ((path === '/v1/login' || path === '/v1/refresh') && response.ok()) {
      const body = (await response.json().catch(() => ({}))) as { access_token?: string; refresh_token?: string };
      note(body.access_token ?? null);
      assert.equal(body.refresh_token, undefined, 'in cookie mode the refresh token never reaches the page');
    }
  });
  return device;
}

const JWT = /eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}/;

/** Nothing a script can read holds a token: localStorage, sessionStorage, document.cookie, or any write to them so far. */
export async function assertNoTokenReadable(page: Page, device: Device, when: string): Promise<void> {
  const seen = await page.evaluate(() => ({
    local: Object.keys(localStorage).map((k) => `${k}=${localStorage.getItem(k) ?? ''}`),
    session: Object.keys(sessionStorage).map((k) => `${k}=${sessionStorage.getItem(k) ?? ''}`),
    cookie: document.cookie,
    writes: (window as unknown as { __latchWrites?: string[] }).__latchWrites ?? [],
  }));
  const secrets = [...device.accessTokens, ...device.refreshTokens];
  for (const [where, values] of [
    ['localStorage', seen.local],
    ['sessionStorage', seen.session],
    ['document.cookie', [seen.cookie]],
    ['script writes', seen.writes],
  ] as const) {
    for (const value of values) {
      assert.doesNotMatch(value, JWT, `${when}: a JWT in ${where}`);
      for (const secret of secrets) assert.ok(!value.includes(secret), `${when}: a token in ${where}`);
    }
  }
  for (const cookie of await device.context.cookies()) {
    if (cookie.httpOnly) continue;
    assert.doesNotMatch(cookie.value, JWT, `${when}: a JWT in the script-readable cookie ${cookie.name}`);
    for (const secret of secrets) assert.ok(!cookie.value.includes(secret), `${when}: a token in the script-readable cookie ${cookie.name}`);
  }
  const refresh = (await device.context.cookies()).find((c) => c.name === 'latch_refresh');
  if (refresh) {
    assert.equal(refresh.httpOnly, true, `${when}: the refresh cookie is HttpOnly`);
    assert.equal(refresh.sameSite, 'Strict');
    assert.equal(refresh.path, '/v1');
  }
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  // from the top: a scrolled page would show the sticky header in the middle of a full-page capture
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** What the server says about an access token right now. */
export async function meStatus(server: Server, token: string): Promise<number> {
  const res = await server.h.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } });
  return res.statusCode;
}

/** The exp claim of an access token, in seconds since the epoch. */
export function expOf(token: string): number {
  const payload = token.split('.')[1] ?? '';
  return (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp: number }).exp;
}

export async function signUp(page: Page, server: Server, username: string): Promise<void> {
  await page.goto(server.url);
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
}

export async function logIn(page: Page, server: Server, username: string, password = PASSWORD): Promise<void> {
  await page.goto(server.url);
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
}
