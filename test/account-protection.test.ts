// Account protection through HTTP: admin checks, locks, failed-login throttling with device
// tokens, password change and reset, deletion, and the audit log.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipBucket } from '../src/core/throttle.ts';
import { ManualClock } from '../src/core/clock.ts';
import { bearer, harness, json, login, post, registerAndLogin, type Harness, type Tokens } from './helpers.ts';

const PASSWORD = 'correct horse battery';

async function makeAdmin(h: Harness, username = 'root'): Promise<Tokens> {
  await h.opened.latch.register({ username, password: PASSWORD }, null, { admin: true, bypassSignup: true });
  return login(h.app, username);
}

const me = async (h: Harness, token: string): Promise<number> => (await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode;

describe('admin routes', () => {
  let h: Harness;
  let admin: Tokens;
  let user: Tokens;
  before(async () => {
    h = await harness();
    admin = await makeAdmin(h);
    user = await registerAndLogin(h.app, 'plain');
  });
  after(async () => h.close());

  const routes: [string, string, unknown?][] = [
    ['POST', '/v1/admin/users/plain/lock', {}],
    ['POST', '/v1/admin/users/plain/unlock'],
    ['POST', '/v1/admin/users/plain/password', { new_password: 'another password' }],
    ['DELETE', '/v1/admin/users/plain'],
    ['GET', '/v1/admin/users/plain/sessions'],
    ['DELETE', '/v1/admin/sessions/abc'],
    ['POST', '/v1/admin/keys/rotate', {}],
    ['GET', '/v1/admin/audit'],
  ];

  it('a non-admin gets 403 forbidden on every admin route, and nothing changes', async () => {
    for (const [method, url, body] of routes) {
      const res = await h.app.inject({ method: method as 'GET', url, headers: bearer(user.access_token), ...(body ? { payload: body as object } : {}) });
      assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
      assert.equal(json(res).code, 'forbidden');
    }
    assert.equal(await me(h, user.access_token), 200);
    assert.equal((await post(h.app, '/v1/login', { username: 'plain', password: PASSWORD })).statusCode, 200);
  });

  it('no token or a garbage token gets 401 on every admin route', async () => {
    for (const [method, url] of routes) {
      for (const headers of [{}, bearer('garbage')]) {
        const res = await h.app.inject({ method: method as 'GET', url, headers });
        assert.equal(res.statusCode, 401, `${method} ${url}`);
      }
    }
  });

  it('the admin role comes from the store: an admin demoted... deleted loses access at once', async () => {
    const other = await makeAdmin(h, 'root2');
    assert.equal((await h.app.inject({ url: '/v1/admin/audit', headers: bearer(other.access_token) })).statusCode, 200);
    assert.equal((await h.app.inject({ method: 'DELETE', url: '/v1/admin/users/root2', headers: bearer(admin.access_token) })).statusCode, 204);
    assert.equal((await h.app.inject({ url: '/v1/admin/audit', headers: bearer(other.access_token) })).statusCode, 401);
  });

  it('lists a user’s sessions and ends any one of them', async () => {
    const res = await h.app.inject({ url: '/v1/admin/users/plain/sessions', headers: bearer(admin.access_token) });
    assert.equal(res.statusCode, 200);
    const sessions = json(res).sessions as { id: string }[];
    assert.ok(sessions.some((s) => s.id === user.session_id));
    assert.equal((await h.app.inject({ method: 'DELETE', url: `/v1/admin/sessions/${user.session_id}`, headers: bearer(admin.access_token) })).statusCode, 204);
    assert.equal(await me(h, user.access_token), 401);
    assert.equal((await h.app.inject({ method: 'DELETE', url: `/v1/admin/sessions/${user.session_id}`, headers: bearer(admin.access_token) })).statusCode, 404);
    assert.equal((await h.app.inject({ url: '/v1/admin/users/nobody/sessions', headers: bearer(admin.access_token) })).statusCode, 404);
  });
});

describe('lock: block until T', () => {
  const clock = new ManualClock(Date.UTC(2026, 6, 1));
  let h: Harness;
  let admin: Tokens;
  before(async () => {
    h = await harness({ lockDuration: 86400 }, { clock });
    admin = await makeAdmin(h);
  });
  after(async () => h.close());

  it('revokes every live session at once and refuses login and refresh until T; a known device is told 423', async () => {
    const first = await registerAndLogin(h.app, 'lucy');
    const second = await login(h.app, 'lucy');
    const res = await post(h.app, '/v1/admin/users/lucy/lock', { seconds: 3600, reason: 'stolen laptop' }, bearer(admin.access_token));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(json(res).locked_until, new Date(clock.now() + 3600_000).toISOString());
    assert.equal(await me(h, first.access_token), 401);
    assert.equal(await me(h, second.access_token), 401);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: first.refresh_token })).statusCode, 401);

    // an unknown device: exactly what a wrong password looks like
    const unknown = await post(h.app, '/v1/login', { username: 'lucy', password: PASSWORD });
    const wrong = await post(h.app, '/v1/login', { username: 'lucy', password: 'wrong password' });
    assert.equal(unknown.statusCode, 401);
    assert.deepEqual(json(unknown), json(wrong));
    // the device that logged in before
    const known = await post(h.app, '/v1/login', { username: 'lucy', password: PASSWORD, device_token: (first as Tokens & { device_token: string }).device_token });
    assert.equal(known.statusCode, 423);
    assert.equal(json(known).code, 'account_locked');
    assert.equal(json(known).locked_until, new Date(clock.now() + 3600_000).toISOString());
    // the known device is told whatever password it sends (DESIGN.md point 8): it is the owner's
    const knownWrong = await post(h.app, '/v1/login', { username: 'lucy', password: 'wrong password', device_token: (first as Tokens & { device_token: string }).device_token });
    assert.equal(knownWrong.statusCode, 423);
  });

  it('lifts itself at T', async () => {
    clock.advance(3600_000);
    await h.opened.latch.revocations.wake();
    assert.equal((await post(h.app, '/v1/login', { username: 'lucy', password: PASSWORD })).statusCode, 200);
  });

  it('defaults to LATCH_LOCK_DURATION, accepts until, and can be lifted early', async () => {
    admin = await login(h.app, 'root'); // the hour that passed outlived the admin's access token
    const res = await post(h.app, '/v1/admin/users/lucy/lock', {}, bearer(admin.access_token));
    assert.equal(json(res).locked_until, new Date(clock.now() + 86400_000).toISOString());
    const until = new Date(clock.now() + 7200_000).toISOString();
    assert.equal(json(await post(h.app, '/v1/admin/users/lucy/lock', { until }, bearer(admin.access_token))).locked_until, until);
    assert.equal((await post(h.app, '/v1/login', { username: 'lucy', password: PASSWORD })).statusCode, 401);
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/admin/users/lucy/unlock', headers: bearer(admin.access_token) })).statusCode, 204);
    assert.equal((await post(h.app, '/v1/login', { username: 'lucy', password: PASSWORD })).statusCode, 200);
  });

  it('refuses bad lock requests with 400', async () => {
    for (const body of [{ seconds: 0 }, { seconds: 'soon' }, { until: 'tomorrow' }, { until: new Date(clock.now() - 1000).toISOString() }, { seconds: 10, until: new Date(clock.now() + 1e6).toISOString() }, { x: 1 }]) {
      const res = await post(h.app, '/v1/admin/users/lucy/lock', body, bearer(admin.access_token));
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(json(res).code, 'invalid_request');
    }
    assert.equal((await post(h.app, '/v1/admin/users/nobody/lock', {}, bearer(admin.access_token))).statusCode, 404);
  });
});

describe('failed-login throttling', () => {
  const clock = new ManualClock(Date.UTC(2026, 7, 1));
  let h: Harness;
  before(async () => {
    h = await harness({ throttleUserFailures: 5, throttleIpFailures: 1000, throttleMaxDelay: 8 }, { clock });
  });
  after(async () => h.close());

  it('after 5 failures an unknown device gets 429 with a doubling, bounded Retry-After, right password or wrong', async () => {
    const owner = (await registerAndLogin(h.app, 'mallory-target')) as Tokens & { device_token: string };
    for (let i = 0; i < 5; i += 1) assert.equal((await post(h.app, '/v1/login', { username: 'mallory-target', password: `guess ${i} wrong` })).statusCode, 401);
    const blocked = await post(h.app, '/v1/login', { username: 'mallory-target', password: PASSWORD });
    assert.equal(blocked.statusCode, 429);
    assert.equal(json(blocked).code, 'too_many_attempts');
    assert.equal(blocked.headers['retry-after'], '1');

    // the owner's known device still logs in, and existing sessions are untouched
    const known = await post(h.app, '/v1/login', { username: 'mallory-target', password: PASSWORD, device_token: owner.device_token });
    assert.equal(known.statusCode, 200);
    assert.equal(await me(h, owner.access_token), 200);

    const delays: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      clock.advance(10_000);
      assert.equal((await post(h.app, '/v1/login', { username: 'mallory-target', password: 'wrong again' })).statusCode, 401);
      delays.push(String((await post(h.app, '/v1/login', { username: 'mallory-target', password: 'x' })).headers['retry-after']));
    }
    assert.deepEqual(delays, ['2', '4', '8', '8', '8'], 'doubles, capped at LATCH_THROTTLE_MAX_DELAY');
  });

  it('counts unknown usernames too, so existence cannot be probed', async () => {
    for (let i = 0; i < 5; i += 1) await post(h.app, '/v1/login', { username: 'ghost-user', password: 'wrong password' });
    assert.equal((await post(h.app, '/v1/login', { username: 'ghost-user', password: 'wrong password' })).statusCode, 429);
  });

  it('a known device has its own allowance, and a success resets only its own counter', async () => {
    const t = (await registerAndLogin(h.app, 'devi')) as Tokens & { device_token: string };
    for (let i = 0; i < 3; i += 1) await post(h.app, '/v1/login', { username: 'devi', password: 'wrong password', device_token: t.device_token });
    assert.equal((await post(h.app, '/v1/login', { username: 'devi', password: PASSWORD, device_token: t.device_token })).statusCode, 200);
    // a device token for another account is just an unknown device here
    const other = (await registerAndLogin(h.app, 'devi2')) as Tokens & { device_token: string };
    for (let i = 0; i < 5; i += 1) await post(h.app, '/v1/login', { username: 'devi', password: 'wrong password', device_token: other.device_token });
    assert.equal((await post(h.app, '/v1/login', { username: 'devi', password: PASSWORD, device_token: other.device_token })).statusCode, 429);
    assert.equal((await post(h.app, '/v1/login', { username: 'devi', password: PASSWORD, device_token: t.device_token })).statusCode, 200);
    // a forged device token counts as no device
    assert.equal((await post(h.app, '/v1/login', { username: 'devi', password: PASSWORD, device_token: `${t.device_token.slice(0, -4)}AAAA` })).statusCode, 429);
  });

  it('records login.failed and login.throttled in the audit log', async () => {
    const events = await h.opened.latch.store.listAudit(0, 1000);
    assert.ok(events.some((e) => e.type === 'login.failed'));
    assert.ok(events.some((e) => e.type === 'login.throttled' && (e.detail as { scope: string }).scope === 'username'));
  });
});

describe('per-IP throttling', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ throttleIpFailures: 12 });
  });
  after(async () => h.close());

  const from = (ip: string, body: unknown) =>
    h.app.inject({ method: 'POST', url: '/v1/login', payload: body as object, headers: { 'content-type': 'application/json' }, remoteAddress: ip });

  it('throttles one address that fails across many usernames; IPv6 counts per /64', async () => {
    await post(h.app, '/v1/users', { username: 'sprayed', password: PASSWORD });
    for (let i = 0; i < 12; i += 1) await from('2001:db8:1:2::10', { username: `spray-${i}`, password: 'wrong password' });
    const sameSlash64 = await from('2001:db8:1:2:ffff::99', { username: 'sprayed', password: PASSWORD });
    assert.equal(sameSlash64.statusCode, 429, 'another address in the same /64, even with the right password');
    assert.equal((await from('2001:db8:1:3::10', { username: 'sprayed', password: PASSWORD })).statusCode, 200, 'the next /64 is not throttled');
    assert.equal((await from('192.0.2.7', { username: 'sprayed', password: PASSWORD })).statusCode, 200);
    assert.equal(ipBucket('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(ipBucket('2001:db8:1:2::9'), '2001:db8:1:2::/64');
    assert.equal(ipBucket('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(ipBucket('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(ipBucket('192.0.2.7'), '192.0.2.7');
  });
});

describe('password change, reset and deletion', () => {
  let h: Harness;
  let admin: Tokens;
  before(async () => {
    h = await harness();
    admin = await makeAdmin(h);
  });
  after(async () => h.close());

  it('POST /v1/password checks the current password, ends every other session and keeps this one', async () => {
    const a = await registerAndLogin(h.app, 'pat');
    const b = await login(h.app, 'pat');
    const wrong = await post(h.app, '/v1/password', { current_password: 'not it at all', new_password: 'a brand new password' }, bearer(a.access_token));
    assert.equal(wrong.statusCode, 401);
    assert.equal(json(wrong).code, 'invalid_credentials');
    assert.equal(wrong.headers['www-authenticate'], undefined);
    assert.equal((await post(h.app, '/v1/password', { current_password: PASSWORD, new_password: 'short' }, bearer(a.access_token))).statusCode, 400);
    // guessing the current password with a stolen access token is throttled like a login
    for (let i = 0; i < 4; i += 1) await post(h.app, '/v1/password', { current_password: `guess ${i}`, new_password: 'a brand new password' }, bearer(a.access_token));
    const guessing = await post(h.app, '/v1/password', { current_password: PASSWORD, new_password: 'a brand new password' }, bearer(a.access_token));
    assert.equal(guessing.statusCode, 429);
    assert.equal(json(guessing).code, 'too_many_attempts');
    await h.opened.latch.store.clearThrottle(`password:${(await h.opened.latch.findUser('pat'))!.id}`);
    assert.equal(await me(h, b.access_token), 200, 'nothing changed yet');
    const ok = await post(h.app, '/v1/password', { current_password: PASSWORD, new_password: 'a brand new password' }, bearer(a.access_token));
    assert.equal(ok.statusCode, 204);
    assert.equal(await me(h, a.access_token), 200);
    assert.equal(await me(h, b.access_token), 401);
    assert.equal((await post(h.app, '/v1/login', { username: 'pat', password: PASSWORD })).statusCode, 401);
    assert.equal((await post(h.app, '/v1/login', { username: 'pat', password: 'a brand new password' })).statusCode, 200);
  });

  it("an operator's reset ends every session of the user", async () => {
    const a = await registerAndLogin(h.app, 'quentin');
    const res = await post(h.app, '/v1/admin/users/quentin/password', { new_password: 'operator chosen one' }, bearer(admin.access_token));
    assert.equal(res.statusCode, 204);
    assert.equal(await me(h, a.access_token), 401);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: a.refresh_token })).statusCode, 401);
    assert.equal((await post(h.app, '/v1/login', { username: 'quentin', password: 'operator chosen one' })).statusCode, 200);
  });

  it('deleting a user revokes everything at once; the name can be registered again', async () => {
    const a = await registerAndLogin(h.app, 'rita');
    assert.equal((await h.app.inject({ method: 'DELETE', url: '/v1/admin/users/rita', headers: bearer(admin.access_token) })).statusCode, 204);
    assert.equal(await me(h, a.access_token), 401);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: a.refresh_token })).statusCode, 401);
    assert.equal((await post(h.app, '/v1/login', { username: 'rita', password: PASSWORD })).statusCode, 401);
    assert.equal((await post(h.app, '/v1/users', { username: 'rita', password: PASSWORD })).statusCode, 201);
    assert.equal((await h.app.inject({ method: 'DELETE', url: '/v1/admin/users/rita-nobody', headers: bearer(admin.access_token) })).statusCode, 404);
  });

  it('the audit log pages oldest first, carries actor, subject, IP and user agent, and never a secret', async () => {
    const all = json(await h.app.inject({ url: '/v1/admin/audit?limit=1000', headers: bearer(admin.access_token) }));
    const events = all.events as { id: number; type: string; actor: string | null; subject: string | null; ip: string | null; user_agent: string | null }[];
    const types = new Set(events.map((e) => e.type));
    for (const t of ['user.created', 'login.succeeded', 'login.failed', 'password.changed', 'password.reset', 'user.deleted']) assert.ok(types.has(t), t);
    assert.deepEqual(events.map((e) => e.id), [...events.map((e) => e.id)].sort((x, y) => x - y));
    assert.equal(all.last_id, events[events.length - 1]!.id);
    const reset = events.find((e) => e.type === 'password.reset')!;
    assert.ok(reset.actor && reset.subject && reset.ip === '127.0.0.1');
    const text = JSON.stringify(events);
    for (const secret of [PASSWORD, 'a brand new password', 'operator chosen one', admin.access_token, admin.refresh_token]) assert.ok(!text.includes(secret), 'no secret in the audit log');
    const page = json(await h.app.inject({ url: `/v1/admin/audit?after=${events[1]!.id}&limit=2`, headers: bearer(admin.access_token) }));
    assert.deepEqual((page.events as { id: number }[]).map((e) => e.id), [events[2]!.id, events[3]!.id]);
    for (const q of ['limit=0', 'limit=1001', 'after=-1', 'after=abc', 'x=1']) {
      assert.equal((await h.app.inject({ url: `/v1/admin/audit?${q}`, headers: bearer(admin.access_token) })).statusCode, 400, q);
    }
  });
});

describe('request-rate limits', () => {
  it('sign-ups per address: a burst, then 429 rate_limited with Retry-After; LATCH_RATE_LIMITS=off lifts it', async () => {
    const h = await harness();
    try {
      const from = (ip: string, i: number) =>
        h.app.inject({ method: 'POST', url: '/v1/users', payload: { username: `burst-${ip.replace(/\./g, '-')}-${i}`, password: PASSWORD }, headers: { 'content-type': 'application/json' }, remoteAddress: ip });
      const codes: number[] = [];
      for (let i = 0; i < 31; i += 1) codes.push((await from('203.0.113.5', i)).statusCode);
      assert.deepEqual(codes.slice(0, 30), Array(30).fill(201));
      const limited = await from('203.0.113.5', 99);
      assert.equal(limited.statusCode, 429);
      assert.equal(json(limited).code, 'rate_limited');
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      assert.equal((await from('203.0.113.6', 0)).statusCode, 201, 'another address has its own bucket');
    } finally {
      await h.close();
    }
    const off = await harness({ rateLimits: false });
    try {
      for (let i = 0; i < 35; i += 1) {
        const res = await off.app.inject({ method: 'POST', url: '/v1/users', payload: { username: `free-${i}`, password: PASSWORD }, headers: { 'content-type': 'application/json' } });
        assert.equal(res.statusCode, 201);
      }
    } finally {
      await off.close();
    }
  });
});

describe('refresh rate limits', () => {
  it('one refresh token retried in a loop gets 429 rate_limited after its burst', async () => {
    const h = await harness({ refreshReuseGrace: 300 });
    try {
      const t = await registerAndLogin(h.app, 'looper');
      const codes: number[] = [];
      for (let i = 0; i < 12; i += 1) codes.push((await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token })).statusCode);
      assert.deepEqual(codes.slice(0, 10), Array(10).fill(200), 'grace-window retries are fine up to the burst');
      assert.deepEqual(codes.slice(10), [429, 429]);
      const other = await login(h.app, 'looper');
      assert.equal((await post(h.app, '/v1/refresh', { refresh_token: other.refresh_token })).statusCode, 200, 'another token has its own bucket');
    } finally {
      await h.close();
    }
  });
});
