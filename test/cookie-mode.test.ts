// Browser mode over HTTP: the refresh token in an HttpOnly cookie, refresh and logout by that
// cookie (also with an expired access token), the Origin check against CSRF, and CORS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/core/clock.ts';
import { buildApp } from '../src/server/app.ts';
import type { App } from '../src/server/app-types.ts';
import { bearer, harness, json, post, type Harness, type Res } from './helpers.ts';

const COOKIE = 'latch_refresh';
// light-my-request addresses the app as localhost:80; an issuer of 127.0.0.1:8080 is the default
const SAME_ORIGIN = { origin: 'http://localhost' };
const ISSUER_ORIGIN = { origin: 'http://127.0.0.1:8080' };
const EVIL = { origin: 'https://evil.example' };
const APP_ORIGIN = 'https://app.example.com';
const PASSWORD = 'correct horse battery';

function refreshCookie(res: Res): { value: string; maxAge?: number; path?: string; httpOnly?: boolean; sameSite?: string; secure?: boolean; expires?: Date } | undefined {
  return res.cookies.find((c) => c.name === COOKIE);
}

function assertCleared(res: Res, what: string): void {
  const c = refreshCookie(res);
  assert.ok(c, `${what}: a Set-Cookie clearing ${COOKIE}`);
  assert.equal(c.value, '', what);
  assert.ok(c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now()), `${what}: expired`);
  assert.equal(c.path, '/v1', `${what}: same path as when set, or the browser keeps it`);
}

async function cookieLogin(app: App, username: string, headers: Record<string, string> = SAME_ORIGIN): Promise<{ res: Res; cookie: string; access: string }> {
  const res = await post(app, '/v1/login', { username, password: PASSWORD, cookie: true }, headers);
  assert.equal(res.statusCode, 200, res.body);
  return { res, cookie: refreshCookie(res)?.value ?? '', access: String(json(res).access_token) };
}

const withCookie = (cookie: string, headers: Record<string, string> = SAME_ORIGIN): Record<string, string> => ({ cookie: `${COOKIE}=${cookie}`, ...headers });

describe('cookie mode: login, refresh, logout', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ refreshReuseGrace: 10 });
    for (const name of ['ada', 'bea', 'cyd', 'dee', 'eve', 'fay', 'gus', 'hal', 'ivy']) {
      assert.equal((await post(h.app, '/v1/users', { username: name, password: PASSWORD })).statusCode, 201);
    }
  });
  after(async () => h.close());

  const me = async (token: string): Promise<number> => (await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode;

  it('login with {"cookie": true} sets an HttpOnly, SameSite=Strict, Path=/v1 cookie and leaves refresh_token out of the body', async () => {
    const { res, cookie } = await cookieLogin(h.app, 'ada');
    const body = json(res);
    assert.equal(body.refresh_token, undefined);
    assert.equal(body.device_token, undefined, "the device token stays in its HttpOnly cookie too");
    assert.equal(body.token_type, 'Bearer');
    assert.equal(typeof body.access_token, 'string');
    assert.equal(typeof body.session_id, 'string');
    const c = refreshCookie(res)!;
    assert.match(cookie, /^[A-Za-z0-9_-]{40,}$/);
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
    assert.equal(c.path, '/v1');
    assert.equal(c.maxAge, body.refresh_expires_in);
    assert.notEqual(c.secure, true, 'plain http issuer and request: not Secure, or the browser would drop it');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.doesNotMatch(res.body, new RegExp(cookie), 'the refresh token is nowhere in the body');
  });

  it('without "cookie" the body keeps refresh_token and no refresh cookie is set', async () => {
    const res = await post(h.app, '/v1/login', { username: 'ada', password: PASSWORD });
    assert.equal(typeof json(res).refresh_token, 'string');
    assert.equal(refreshCookie(res), undefined);
  });

  it('a non-boolean "cookie" is 400 invalid_request', async () => {
    const res = await post(h.app, '/v1/login', { username: 'ada', password: PASSWORD, cookie: 'yes' });
    assert.equal(res.statusCode, 400);
    assert.equal(json(res).code, 'invalid_request');
  });

  it('a cookie-mode login from a foreign page is refused before the password is even checked; one without Origin (curl) is fine', async () => {
    const res = await post(h.app, '/v1/login', { username: 'ada', password: PASSWORD, cookie: true }, EVIL);
    assert.equal(res.statusCode, 403);
    assert.equal(json(res).code, 'origin_not_allowed');
    assert.equal(refreshCookie(res), undefined);
    assert.equal((await post(h.app, '/v1/login', { username: 'ada', password: PASSWORD, cookie: true })).statusCode, 200);
  });

  it('refresh reads the cookie, rotates it, and answers without refresh_token', async () => {
    const { cookie, res: login } = await cookieLogin(h.app, 'bea');
    const res = await post(h.app, '/v1/refresh', undefined, withCookie(cookie));
    assert.equal(res.statusCode, 200, res.body);
    const body = json(res);
    assert.equal(body.refresh_token, undefined);
    assert.equal(body.session_id, json(login).session_id);
    const next = refreshCookie(res);
    assert.ok(next && next.value && next.value !== cookie, 'a rotated cookie');
    assert.equal(next.httpOnly, true);
    assert.equal(next.sameSite, 'Strict');
    assert.equal(next.path, '/v1');
    assert.equal(next.maxAge, body.refresh_expires_in);
    assert.equal(await me(String(body.access_token)), 200);
    // the rotated cookie works in turn, here from the issuer's origin
    const again = await post(h.app, '/v1/refresh', {}, withCookie(next.value, ISSUER_ORIGIN));
    assert.equal(again.statusCode, 200, again.body);
  });

  it('a refresh_token in the body wins over the cookie, and then no cookie is set', async () => {
    const body = json(await post(h.app, '/v1/login', { username: 'bea', password: PASSWORD }));
    const res = await post(h.app, '/v1/refresh', { refresh_token: body.refresh_token }, withCookie('not-the-one'));
    assert.equal(res.statusCode, 200);
    assert.equal(typeof json(res).refresh_token, 'string');
    assert.equal(refreshCookie(res), undefined);
  });

  it('refresh with neither a body token nor a cookie is 400 invalid_request', async () => {
    for (const payload of [undefined, {}]) {
      const res = await post(h.app, '/v1/refresh', payload, SAME_ORIGIN);
      assert.equal(res.statusCode, 400);
      assert.equal(json(res).code, 'invalid_request');
    }
  });

  it('a dead or garbage cookie is 401 invalid_grant and the cookie is cleared', async () => {
    for (const value of ['garbage', 'A'.repeat(43)]) {
      const res = await post(h.app, '/v1/refresh', undefined, withCookie(value));
      assert.equal(res.statusCode, 401);
      assert.equal(json(res).code, 'invalid_grant');
      assertCleared(res, value);
    }
  });

  it('CSRF: refresh by cookie without Origin, or from another origin, is 403 and changes nothing', async () => {
    const { cookie } = await cookieLogin(h.app, 'cyd');
    for (const headers of [{}, EVIL, { origin: 'null' }, { origin: 'http://localhost.evil.example' }]) {
      const res = await post(h.app, '/v1/refresh', undefined, withCookie(cookie, headers));
      assert.equal(res.statusCode, 403, JSON.stringify(headers));
      assert.equal(json(res).code, 'origin_not_allowed');
      assert.equal(refreshCookie(res), undefined, 'the cookie is left alone');
    }
    // the cookie was not spent by the refused attempts
    const ok = await post(h.app, '/v1/refresh', undefined, withCookie(cookie));
    assert.equal(ok.statusCode, 200);
  });

  it('logout by the cookie alone (no access token) ends the session and clears the cookie', async () => {
    const { cookie, access } = await cookieLogin(h.app, 'dee');
    const res = await post(h.app, '/v1/logout', undefined, withCookie(cookie));
    assert.equal(res.statusCode, 204, res.body);
    assertCleared(res, 'logout');
    assert.equal(await me(access), 401, 'the access token of that session is refused at once');
    const refresh = await post(h.app, '/v1/refresh', undefined, withCookie(cookie));
    assert.equal(refresh.statusCode, 401);
  });

  it('logout with a valid bearer token clears the cookie too; scope "others" keeps it', async () => {
    const a = await cookieLogin(h.app, 'eve');
    const b = await cookieLogin(h.app, 'eve');
    const others = await post(h.app, '/v1/logout', { scope: 'others' }, { ...bearer(a.access), ...withCookie(a.cookie) });
    assert.equal(others.statusCode, 204);
    assert.equal(refreshCookie(others), undefined, 'this session goes on, so does its cookie');
    assert.equal(await me(b.access), 401);
    assert.equal(await me(a.access), 200);
    const out = await post(h.app, '/v1/logout', {}, { ...bearer(a.access), ...withCookie(a.cookie) });
    assert.equal(out.statusCode, 204);
    assertCleared(out, 'logout with bearer');
    assert.equal(await me(a.access), 401);
  });

  it('when the cookie belongs to a newer session than the bearer token, logout ends both', async () => {
    const older = await cookieLogin(h.app, 'fay');
    const newer = await cookieLogin(h.app, 'fay');
    const res = await post(h.app, '/v1/logout', undefined, { ...bearer(older.access), ...withCookie(newer.cookie) });
    assert.equal(res.statusCode, 204);
    assert.equal(await me(older.access), 401);
    assert.equal(await me(newer.access), 401);
  });

  it('logout "all" by the cookie alone ends every session of the user', async () => {
    const a = await cookieLogin(h.app, 'gus');
    const b = await cookieLogin(h.app, 'gus');
    const res = await post(h.app, '/v1/logout', { scope: 'all' }, withCookie(a.cookie));
    assert.equal(res.statusCode, 204);
    assert.deepEqual([await me(a.access), await me(b.access)], [401, 401]);
  });

  it('logout with neither a token nor a cookie is 401 with the Bearer challenge', async () => {
    const res = await post(h.app, '/v1/logout', undefined, SAME_ORIGIN);
    assert.equal(res.statusCode, 401);
    assert.equal(json(res).code, 'invalid_token');
    assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
    const garbage = await post(h.app, '/v1/logout', undefined, { ...bearer('not.a.jwt'), ...SAME_ORIGIN });
    assert.equal(garbage.statusCode, 401);
  });

  it('logout with only a dead cookie is 401 invalid_grant (nothing was ended) and clears it', async () => {
    const res = await post(h.app, '/v1/logout', { scope: 'all' }, withCookie('A'.repeat(43)));
    assert.equal(res.statusCode, 401);
    assert.equal(json(res).code, 'invalid_grant');
    assertCleared(res, 'dead cookie');
  });

  it('CSRF: logout by cookie from another origin is 403 and the session lives on', async () => {
    const { cookie, access } = await cookieLogin(h.app, 'hal');
    for (const headers of [{}, EVIL]) {
      const res = await post(h.app, '/v1/logout', { scope: 'all' }, withCookie(cookie, headers));
      assert.equal(res.statusCode, 403);
      assert.equal(json(res).code, 'origin_not_allowed');
      assert.equal(refreshCookie(res), undefined);
    }
    assert.equal(await me(access), 200);
  });

  it('reuse of a rotated cookie outside the grace window revokes the session and clears the cookie', async () => {
    const strict = await harness({ refreshReuseGrace: 0 });
    try {
      await post(strict.app, '/v1/users', { username: 'ivy', password: PASSWORD });
      const { cookie } = await cookieLogin(strict.app, 'ivy');
      const first = await post(strict.app, '/v1/refresh', undefined, withCookie(cookie));
      assert.equal(first.statusCode, 200);
      const reuse = await post(strict.app, '/v1/refresh', undefined, withCookie(cookie));
      assert.equal(reuse.statusCode, 401);
      assert.equal(json(reuse).code, 'refresh_token_reused');
      assertCleared(reuse, 'reuse');
      assert.equal((await strict.app.inject({ url: '/v1/me', headers: bearer(String(json(first).access_token)) })).statusCode, 401);
    } finally {
      await strict.close();
    }
  });
});

describe('cookie mode: logout by cookie once the access token has expired', () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;
  before(async () => {
    h = await harness({ accessTtl: 60 }, { clock });
    await post(h.app, '/v1/users', { username: 'kim', password: PASSWORD });
  });
  after(async () => h.close());

  it('the expired token is refused, the cookie alone logs out, and the session is gone', async () => {
    const { cookie, access } = await cookieLogin(h.app, 'kim');
    clock.advance(120_000);
    const refused = await h.app.inject({ url: '/v1/me', headers: bearer(access) });
    assert.equal(refused.statusCode, 401, 'expired');
    const res = await post(h.app, '/v1/logout', undefined, { ...bearer(access), ...withCookie(cookie) });
    assert.equal(res.statusCode, 204, res.body);
    assertCleared(res, 'logout by cookie');
    const refresh = await post(h.app, '/v1/refresh', undefined, withCookie(cookie));
    assert.equal(refresh.statusCode, 401);
    assert.equal(json(refresh).code, 'invalid_grant');
  });
});

describe('cookie mode: Secure attribute', () => {
  it('is set when the issuer is https', async () => {
    const h = await harness({ issuer: 'https://auth.example.com' });
    try {
      await post(h.app, '/v1/users', { username: 'lou', password: PASSWORD });
      const res = await post(h.app, '/v1/login', { username: 'lou', password: PASSWORD, cookie: true }, { origin: 'https://auth.example.com' });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(refreshCookie(res)?.secure, true);
    } finally {
      await h.close();
    }
  });

  it('is set when the request came over https through a trusted proxy', async () => {
    const h = await harness();
    const app = await buildApp(h.opened.latch, { logLevel: 'silent', trustProxy: 'true' });
    try {
      await post(app, '/v1/users', { username: 'max', password: PASSWORD });
      const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'login.example.com', origin: 'https://login.example.com' };
      const res = await post(app, '/v1/login', { username: 'max', password: PASSWORD, cookie: true }, headers);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(refreshCookie(res)?.secure, true);
      // and the forwarded host is the server's own origin for the CSRF check
      const refreshed = await post(app, '/v1/refresh', undefined, withCookie(refreshCookie(res)!.value, headers));
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      assert.equal(refreshCookie(refreshed)?.secure, true);
    } finally {
      await app.close();
      await h.close();
    }
  });
});

describe('CORS for LATCH_CORS_ORIGINS', () => {
  let h: Harness;
  let app: App;
  before(async () => {
    h = await harness();
    app = await buildApp(h.opened.latch, { logLevel: 'silent', corsOrigins: [APP_ORIGIN] });
    await post(app, '/v1/users', { username: 'nia', password: PASSWORD });
  });
  after(async () => {
    await app.close();
    await h.close();
  });

  const preflight = (origin: string, url = '/v1/refresh'): Promise<Res> =>
    app.inject({ method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' } });

  it('answers a preflight from a listed origin with credentials allowed', async () => {
    const res = await preflight(APP_ORIGIN);
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers['access-control-allow-origin'], APP_ORIGIN);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.match(String(res.headers['access-control-allow-methods']), /POST/);
    assert.match(String(res.headers['access-control-allow-headers']), /Authorization/);
    assert.match(String(res.headers['access-control-allow-headers']), /Content-Type/);
    assert.match(String(res.headers.vary), /Origin/);
  });

  it('refuses a preflight from an unlisted origin with problem+json, echoing nothing', async () => {
    const res = await preflight('https://evil.example', '/v1/sessions/abc');
    assert.equal(res.statusCode, 403);
    assert.equal(json(res).code, 'origin_not_allowed');
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  });

  it('an OPTIONS request that is not a preflight is just not found', async () => {
    const res = await app.inject({ method: 'OPTIONS', url: '/v1/login' });
    assert.equal(res.statusCode, 404);
    assert.equal(json(res).code, 'not_found');
  });

  it('echoes only listed origins on actual requests, errors included, always with Vary: Origin', async () => {
    const listed = await app.inject({ url: '/healthz', headers: { origin: APP_ORIGIN } });
    assert.equal(listed.headers['access-control-allow-origin'], APP_ORIGIN);
    assert.equal(listed.headers['access-control-allow-credentials'], 'true');
    assert.match(String(listed.headers['access-control-expose-headers']), /Retry-After/);
    const unlisted = await app.inject({ url: '/healthz', headers: { origin: 'https://evil.example' } });
    assert.equal(unlisted.headers['access-control-allow-origin'], undefined);
    assert.match(String(unlisted.headers.vary), /Origin/);
    const error = await app.inject({ url: '/v1/me', headers: { origin: APP_ORIGIN } });
    assert.equal(error.statusCode, 401);
    assert.equal(error.headers['access-control-allow-origin'], APP_ORIGIN, 'the SDK can read the problem document');
  });

  it('a listed origin may log in, refresh and log out by cookie', async () => {
    const origin = { origin: APP_ORIGIN };
    const { cookie, access } = await cookieLogin(app, 'nia', origin);
    const refreshed = await post(app, '/v1/refresh', undefined, withCookie(cookie, origin));
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.equal(refreshed.headers['access-control-allow-origin'], APP_ORIGIN);
    const out = await post(app, '/v1/logout', undefined, withCookie(refreshCookie(refreshed)!.value, origin));
    assert.equal(out.statusCode, 204);
    assert.equal((await app.inject({ url: '/v1/me', headers: bearer(access) })).statusCode, 401);
  });

  it('without LATCH_CORS_ORIGINS there are no CORS headers and preflights are not found', async () => {
    const res = await h.app.inject({ method: 'OPTIONS', url: '/v1/refresh', headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST' } });
    assert.equal(res.statusCode, 404);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    const cross = await post(h.app, '/v1/login', { username: 'nia', password: PASSWORD, cookie: true }, { origin: APP_ORIGIN });
    assert.equal(cross.statusCode, 403, 'nor may that origin use the cookie');
  });
});
