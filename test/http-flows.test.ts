// The user-visible flows through HTTP: register, login, call, logout (every scope), sessions,
// refresh rotation with its grace window and reuse detection.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bearer, harness, json, login, post, registerAndLogin, type Harness } from './helpers.ts';

describe('register, login, call, logout, refused', () => {
  let h: Harness;
  before(async () => {
    h = await harness();
  });
  after(async () => h.close());

  it('creates an account and answers 201 with id and username', async () => {
    const res = await post(h.app, '/v1/users', { username: 'Bob.Smith', password: 'a long password' });
    assert.equal(res.statusCode, 201);
    const body = json(res);
    assert.equal(body.username, 'Bob.Smith');
    assert.match(String(body.id), /^[A-Za-z0-9_-]{22}$/);
  });

  it('refuses a duplicate username by its NFKC lowercase key', async () => {
    const res = await post(h.app, '/v1/users', { username: 'ＢＯＢ.smith', password: 'another password' });
    assert.equal(res.statusCode, 409);
    assert.equal(json(res).code, 'username_taken');
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  });

  it('logs in, calls /v1/me, logs out, and the same token is refused at once', async () => {
    const tokens = await registerAndLogin(h.app, 'carol');
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(tokens.expires_in, 300);
    const me = await h.app.inject({ url: '/v1/me', headers: bearer(tokens.access_token) });
    assert.equal(me.statusCode, 200);
    assert.equal(json(me).username, 'carol');
    assert.equal(json(me).session_id, tokens.session_id);

    const out = await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(tokens.access_token) });
    assert.equal(out.statusCode, 204);

    const again = await h.app.inject({ url: '/v1/me', headers: bearer(tokens.access_token) });
    assert.equal(again.statusCode, 401);
    assert.equal(json(again).code, 'invalid_token');
    assert.equal(again.headers['www-authenticate'], 'Bearer error="invalid_token"');
    // and the refresh token of that session is dead too
    const refresh = await post(h.app, '/v1/refresh', { refresh_token: tokens.refresh_token });
    assert.equal(refresh.statusCode, 401);
    assert.equal(json(refresh).code, 'invalid_grant');
  });

  it('the refusal after logout needs no store read: it holds with the store closed', async () => {
    const tokens = await registerAndLogin(h.app, 'dave');
    await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(tokens.access_token) });
    const other = await login(h.app, 'dave');
    const latch = h.opened.latch;
    // authenticate is synchronous: no I/O can happen inside it
    assert.throws(() => latch.authenticate(tokens.access_token), { code: 'invalid_token' });
    assert.equal(latch.authenticate(other.access_token).sessionId, other.session_id);
  });

  it('token responses are never cached', async () => {
    await post(h.app, '/v1/users', { username: 'erin', password: 'correct horse battery' });
    const res = await post(h.app, '/v1/login', { username: 'erin', password: 'correct horse battery' });
    assert.equal(res.headers['cache-control'], 'no-store');
    const refreshed = await post(h.app, '/v1/refresh', { refresh_token: json(res).refresh_token });
    assert.equal(refreshed.headers['cache-control'], 'no-store');
  });

  it('unknown user and wrong password get the same answer', async () => {
    const wrong = await post(h.app, '/v1/login', { username: 'carol', password: 'not the password' });
    const unknown = await post(h.app, '/v1/login', { username: 'nobody-here', password: 'not the password' });
    assert.equal(wrong.statusCode, 401);
    assert.equal(unknown.statusCode, 401);
    assert.deepEqual(json(wrong), json(unknown));
    assert.equal(wrong.headers['www-authenticate'], undefined, 'login is not a bearer route');
  });

  it('passwords are used exactly as given: no trimming', async () => {
    await post(h.app, '/v1/users', { username: 'frank', password: ' spaced password ' });
    assert.equal((await post(h.app, '/v1/login', { username: 'frank', password: 'spaced password' })).statusCode, 401);
    assert.equal((await post(h.app, '/v1/login', { username: 'frank', password: ' spaced password ' })).statusCode, 200);
  });

  it('logs in with a differently cased or width-folded username', async () => {
    await post(h.app, '/v1/users', { username: 'Grace', password: 'correct horse battery' });
    assert.equal((await post(h.app, '/v1/login', { username: 'ＧＲＡＣＥ', password: 'correct horse battery' })).statusCode, 200);
  });
});

describe('logout scopes and sessions', () => {
  let h: Harness;
  before(async () => {
    h = await harness();
  });
  after(async () => h.close());

  const status = async (token: string): Promise<number> => (await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode;

  it('scope "others" ends every other session and keeps this one', async () => {
    const a = await registerAndLogin(h.app, 'henry');
    const b = await login(h.app, 'henry');
    const c = await login(h.app, 'henry');
    const res = await post(h.app, '/v1/logout', { scope: 'others' }, bearer(a.access_token));
    assert.equal(res.statusCode, 204);
    assert.deepEqual([await status(a.access_token), await status(b.access_token), await status(c.access_token)], [200, 401, 401]);
  });

  it('scope "all" ends every session of the user, and a later login is unaffected', async () => {
    const a = await registerAndLogin(h.app, 'iris');
    const b = await login(h.app, 'iris');
    const stranger = await registerAndLogin(h.app, 'jack');
    assert.equal((await post(h.app, '/v1/logout', { scope: 'all' }, bearer(b.access_token))).statusCode, 204);
    const later = await login(h.app, 'iris');
    assert.deepEqual([await status(a.access_token), await status(b.access_token), await status(later.access_token), await status(stranger.access_token)], [401, 401, 200, 200]);
  });

  it('lists live sessions with the current one marked, and deletes one by id', async () => {
    const a = await registerAndLogin(h.app, 'kate');
    const b = await login(h.app, 'kate', undefined, { device: 'Kate’s phone' });
    const list = await h.app.inject({ url: '/v1/sessions', headers: { ...bearer(a.access_token), 'user-agent': 'test-agent/1' } });
    assert.equal(list.statusCode, 200);
    const sessions = json(list).sessions as { id: string; current: boolean; device: string | null; ip: string; created_at: string }[];
    assert.equal(sessions.length, 2);
    assert.deepEqual(sessions.filter((s) => s.current).map((s) => s.id), [a.session_id]);
    assert.equal(sessions.find((s) => s.id === b.session_id)?.device, 'Kate’s phone');
    assert.equal(sessions[0]?.ip, '127.0.0.1');
    assert.ok(!Number.isNaN(Date.parse(sessions[0]!.created_at)));

    const del = await h.app.inject({ method: 'DELETE', url: `/v1/sessions/${b.session_id}`, headers: bearer(a.access_token) });
    assert.equal(del.statusCode, 204);
    assert.equal(await status(b.access_token), 401);
    assert.equal(await status(a.access_token), 200);
    const after = json(await h.app.inject({ url: '/v1/sessions', headers: bearer(a.access_token) })).sessions as unknown[];
    assert.equal(after.length, 1);
  });

  it("another user's session is not found, and stays live", async () => {
    const mine = await registerAndLogin(h.app, 'leo');
    const theirs = await registerAndLogin(h.app, 'mia');
    const del = await h.app.inject({ method: 'DELETE', url: `/v1/sessions/${theirs.session_id}`, headers: bearer(mine.access_token) });
    assert.equal(del.statusCode, 404);
    assert.equal(json(del).code, 'not_found');
    assert.equal(await status(theirs.access_token), 200);
    const missing = await h.app.inject({ method: 'DELETE', url: '/v1/sessions/no-such-session', headers: bearer(mine.access_token) });
    assert.equal(missing.statusCode, 404);
  });
});

describe('refresh rotation', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ refreshReuseGrace: 10 });
  });
  after(async () => h.close());

  it('rotates: the new refresh token works, the new access token works', async () => {
    const t = await registerAndLogin(h.app, 'nina');
    const res = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(res.statusCode, 200);
    const next = json(res);
    assert.notEqual(next.refresh_token, t.refresh_token);
    assert.equal(next.session_id, t.session_id);
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(String(next.access_token)) })).statusCode, 200);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: next.refresh_token })).statusCode, 200);
  });

  it('a retry inside the grace window gets the same successor', async () => {
    const t = await registerAndLogin(h.app, 'omar');
    const first = json(await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token }));
    const retry = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(retry.statusCode, 200);
    assert.equal(json(retry).refresh_token, first.refresh_token);
  });

  it('two concurrent refreshes of one token yield one live successor', async () => {
    const t = await registerAndLogin(h.app, 'paul');
    const [a, b] = await Promise.all([post(h.app, '/v1/refresh', { refresh_token: t.refresh_token }), post(h.app, '/v1/refresh', { refresh_token: t.refresh_token })]);
    assert.deepEqual([a.statusCode, b.statusCode], [200, 200]);
    assert.equal(json(a).refresh_token, json(b).refresh_token);
    const sessions = json(await h.app.inject({ url: '/v1/sessions', headers: bearer(String(json(a).access_token)) })).sessions as unknown[];
    assert.equal(sessions.length, 1);
  });
});

describe('refresh reuse outside the grace window', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ refreshReuseGrace: 0 });
  });
  after(async () => h.close());

  it('revokes the whole session: successor and access tokens die', async () => {
    const t = await registerAndLogin(h.app, 'quinn');
    const next = json(await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token }));
    const reuse = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(reuse.statusCode, 401);
    assert.equal(json(reuse).code, 'refresh_token_reused');
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: next.refresh_token })).statusCode, 401);
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(String(next.access_token)) })).statusCode, 401);
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode, 401);
    const audit = await h.opened.latch.store.listAudit(0, 1000);
    assert.ok(audit.some((e) => e.type === 'refresh.reused'));
  });

  it('with no grace, two concurrent refreshes leave no live successor but one', async () => {
    const t = await registerAndLogin(h.app, 'rosa');
    const results = await Promise.all([1, 2, 3].map(() => post(h.app, '/v1/refresh', { refresh_token: t.refresh_token })));
    const ok = results.filter((r) => r.statusCode === 200);
    // the first wins; the others are reuse, which revokes the session: no successor outlives it
    assert.equal(ok.length, 1);
    // the second is reuse and revokes the session; the third then meets a revoked session
    assert.deepEqual(results.filter((r) => r.statusCode !== 200).map((r) => json(r).code), ['refresh_token_reused', 'invalid_grant']);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: json(ok[0]!).refresh_token })).statusCode, 401);
  });
});
