// Time-dependent rules with a hand-moved clock: token expiry and tolerance, the refresh grace
// window, idle and absolute session limits, pruning of the log and of memory.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/core/clock.ts';
import { bearer, harness, json, login, post, registerAndLogin, type Harness } from './helpers.ts';

const clock = new ManualClock(Date.UTC(2026, 5, 1, 12, 0, 0));

async function settle(h: Harness): Promise<void> {
  // confirm the log head at the new time, as the poll loop would
  await h.opened.latch.revocations.wake();
}

describe('with a manual clock', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ accessTtl: 300, refreshReuseGrace: 10, sessionIdle: 3600, refreshTtl: 7200 }, { clock });
  });
  after(async () => h.close());

  const me = async (token: string): Promise<number> => (await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode;

  it('an access token works until exp plus 5 s of tolerance, then never again', async () => {
    const t = await registerAndLogin(h.app, 'tina');
    clock.advance(300_000 + 4_000);
    await settle(h);
    assert.equal(await me(t.access_token), 200);
    clock.advance(1_000);
    await settle(h);
    assert.equal(await me(t.access_token), 401);
  });

  it('a replay 9 s after rotation gets the same successor; 11 s after, it is reuse and the session dies', async () => {
    const t = await login(h.app, 'tina');
    const first = json(await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token }));
    clock.advance(9_000);
    const replay = json(await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token }));
    assert.equal(replay.refresh_token, first.refresh_token);
    clock.advance(2_000);
    const reuse = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(json(reuse).code, 'refresh_token_reused');
    assert.equal(await me(String(first.access_token)), 401);
  });

  it('a session idle for longer than LATCH_SESSION_IDLE cannot refresh', async () => {
    const t = await login(h.app, 'tina');
    clock.advance(3600_000);
    const res = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(res.statusCode, 401);
    assert.equal(json(res).code, 'invalid_grant');
  });

  it('refreshing keeps a session alive only until its absolute end', async () => {
    let token = (await login(h.app, 'tina')).refresh_token;
    for (let elapsed = 0; elapsed < 7200_000 - 1800_000; elapsed += 1800_000) {
      clock.advance(1800_000);
      const res = await post(h.app, '/v1/refresh', { refresh_token: token });
      assert.equal(res.statusCode, 200, `at ${elapsed}`);
      token = String(json(res).refresh_token);
      assert.ok(Number(json(res).refresh_expires_in) <= 3600);
    }
    clock.advance(1800_000);
    assert.equal((await post(h.app, '/v1/refresh', { refresh_token: token })).statusCode, 401);
  });

  it('prunes a revocation only once every token it covers has expired', async () => {
    await settle(h);
    await h.opened.latch.prune();
    const latch = h.opened.latch;
    const t = await login(h.app, 'tina');
    await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) });
    assert.ok(latch.revocations.state.isSessionRevoked(t.session_id));
    clock.advance(300_000 + 4_000); // token still inside its tolerance
    await settle(h);
    await latch.prune();
    assert.ok(latch.revocations.state.isSessionRevoked(t.session_id), 'kept while the token could still be accepted');
    assert.equal(await me(t.access_token), 401);
    assert.equal((await latch.store.readRevocations(0, 100, clock.now())).length, 1);
    clock.advance(2_000);
    await settle(h);
    await latch.prune();
    assert.equal(latch.revocations.state.isSessionRevoked(t.session_id), false);
    assert.equal(latch.revocations.state.size, 0);
    assert.equal((await latch.store.readRevocations(0, 100, clock.now())).length, 0);
    assert.equal(await latch.store.getSession(t.session_id), null, 'the dead session row is gone');
    assert.equal(await me(t.access_token), 401, 'and the token is refused by its exp');
  });

  it('fails closed with 503 revocation_state_stale when the log head cannot be confirmed, and recovers', async () => {
    const t = await login(h.app, 'tina');
    await settle(h);
    assert.equal(await me(t.access_token), 200);
    const store = h.opened.latch.store;
    const original = store.revocationHead.bind(store);
    store.revocationHead = async () => {
      throw new Error('store down');
    };
    try {
      clock.advance(6_000); // past the 5 s budget
      await settle(h);
      const res = await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) });
      assert.equal(res.statusCode, 503);
      assert.equal(json(res).code, 'revocation_state_stale');
      assert.equal(res.headers['retry-after'], '1');
      const ready = await h.app.inject({ url: '/readyz' });
      assert.equal(ready.statusCode, 503);
    } finally {
      store.revocationHead = original;
    }
    await settle(h);
    assert.equal(await me(t.access_token), 200);
    assert.equal((await h.app.inject({ url: '/readyz' })).statusCode, 200);
  });
});
