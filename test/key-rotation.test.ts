// Key rotation: scheduled (no one logged out, the next key published before it signs, the old
// one dropped once its tokens expired) and emergency (old tokens die at once, refresh recovers).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { ManualClock } from '../src/core/clock.ts';
import { bearer, harness, json, login, post, registerAndLogin, type Harness, type Tokens } from './helpers.ts';

const kidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
const PASSWORD = 'correct horse battery';

describe('scheduled rotation', () => {
  const clock = new ManualClock(Date.UTC(2026, 8, 1));
  let h: Harness;
  before(async () => {
    h = await harness({ keyRotation: 86400, accessTtl: 300, stalenessBudget: 5 }, { clock });
  });
  after(async () => h.close());

  const jwksKids = async (): Promise<string[]> => ((json(await h.app.inject({ url: '/.well-known/jwks.json' })).keys as { kid: string }[]).map((k) => k.kid));
  const tick = async (): Promise<void> => {
    await h.opened.latch.revocations.wake();
    await h.opened.latch.rotation.tick();
  };

  it('publishes the next key before it signs, switches at its time, keeps the old key until its tokens expire', async () => {
    const t = await registerAndLogin(h.app, 'sam');
    const first = kidOf(t.access_token);
    assert.deepEqual(await jwksKids(), [first]);
    const lead = h.opened.latch.rotation.leadMs;
    assert.equal(lead, (5 + 60) * 1000, 'staleness budget + JWKS max-age');

    clock.advance(86400_000 - lead); // the period is up, minus the lead
    await tick();
    const kids = await jwksKids();
    assert.equal(kids.length, 2, 'the next key is published');
    const next = kids.find((k) => k !== first)!;
    assert.equal(kidOf((await login(h.app, 'sam')).access_token), first, 'but nobody signs with it yet');

    clock.advance(lead);
    const old = await login(h.app, 'sam');
    await tick();
    const fresh = await login(h.app, 'sam');
    assert.equal(kidOf(fresh.access_token), next, 'now it signs');
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(old.access_token) })).statusCode, 200, 'tokens of the old key still work');
    assert.deepEqual((await jwksKids()).sort(), [first, next].sort());

    clock.advance(300_000 + 7_000); // every token the old key signed has expired
    await tick();
    assert.deepEqual(await jwksKids(), [next], 'the old key is dropped');
    const states = h.opened.latch.keyRing.list().map((k) => k.state);
    assert.deepEqual(states, ['active']);
  });

  it('JWKS has a short Cache-Control', async () => {
    assert.equal((await h.app.inject({ url: '/.well-known/jwks.json' })).headers['cache-control'], 'public, max-age=60');
  });
});

describe('emergency rotation', () => {
  let h: Harness;
  let admin: Tokens;
  before(async () => {
    h = await harness();
    await h.opened.latch.register({ username: 'root', password: PASSWORD }, null, { admin: true, bypassSignup: true });
    admin = await login(h.app, 'root');
  });
  after(async () => h.close());

  it('kills every token of the old key at once; refresh tokens still work and get the new key', async () => {
    const t = await registerAndLogin(h.app, 'tess');
    const oldKid = kidOf(t.access_token);
    const started = Date.now();
    const res = await post(h.app, '/v1/admin/keys/rotate', { emergency: true }, bearer(admin.access_token));
    const took = Date.now() - started;
    assert.equal(res.statusCode, 200, res.body);
    const body = json(res) as { kid: string; disabled: string[] };
    assert.deepEqual(body.disabled, [oldKid]);
    assert.notEqual(body.kid, oldKid);
    assert.ok(took < 2000, `rotation took ${took} ms`);

    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode, 401, 'old token refused');
    const jwks = json(await h.app.inject({ url: '/.well-known/jwks.json' })).keys as { kid: string }[];
    assert.deepEqual(jwks.map((k) => k.kid), [body.kid], 'the disabled key is gone from JWKS');

    const refreshed = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(refreshed.statusCode, 200, 'the client recovers silently');
    const access = String(json(refreshed).access_token);
    assert.equal(kidOf(access), body.kid);
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(access) })).statusCode, 200);
    const rows = await h.opened.latch.store.readRevocations(0, 100, Date.now() + 365 * 86400_000);
    assert.ok(rows.some((r) => r.kind === 'key' && r.target === oldKid && r.expiresAt === null), 'a key row that never expires');
  });

  it('with revoke_sessions every session ends too', async () => {
    const t = await login(h.app, 'tess');
    admin = await login(h.app, 'root');
    const res = await post(h.app, '/v1/admin/keys/rotate', { emergency: true, revoke_sessions: true }, bearer(admin.access_token));
    assert.equal(res.statusCode, 200);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token })).statusCode, 401);
    assert.equal((await post(h.app, '/v1/login', { username: 'tess', password: PASSWORD })).statusCode, 200, 'logging in again works');
  });

  it('a disabled key stays disabled across a restart', async () => {
    const disabled = h.opened.latch.keyRing.list().filter((k) => k.state === 'disabled').map((k) => k.kid);
    assert.equal(disabled.length, 2);
    await h.app.close();
    await h.opened.close();
    const again = await harness({}, { dir: h.dir });
    try {
      for (const kid of disabled) {
        assert.equal(again.opened.latch.keyRing.verificationKey(kid), undefined);
        assert.ok(again.opened.latch.revocations.state.isKeyDisabled(kid));
      }
    } finally {
      await again.app.close();
      await again.opened.close();
      const dir = h.dir;
      h = { ...h, close: async () => rmSync(dir, { recursive: true, force: true }) };
    }
  });
});
