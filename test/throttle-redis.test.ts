// Failed-login counters in Redis are shared by every node; when Redis does not answer, the
// store takes over, so throttling never fails open.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { harness, json, post, type Harness } from './helpers.ts';

const REDIS = process.env.LATCH_TEST_REDIS_URL;
const PASSWORD = 'correct horse battery';
if (!REDIS && process.env.CI === 'true') throw new Error('LATCH_TEST_REDIS_URL must be set in CI: the Redis suites may not be skipped');

describe('throttling counters in Redis', { skip: REDIS ? false : 'LATCH_TEST_REDIS_URL is not set' }, () => {
  it('failures counted on node A throttle the username on node B (separate stores, one Redis)', async () => {
    const prefix = `latch-test-${randomBytes(6).toString('hex')}:`;
    const a = await harness({ redisUrl: REDIS, redisPrefix: prefix, throttleUserFailures: 4 });
    const b = await harness({ redisUrl: REDIS, redisPrefix: prefix, throttleUserFailures: 4 });
    try {
      for (const h of [a, b]) await post(h.app, '/v1/users', { username: 'shared', password: PASSWORD });
      for (let i = 0; i < 2; i += 1) assert.equal((await post(a.app, '/v1/login', { username: 'shared', password: 'wrong password' })).statusCode, 401);
      for (let i = 0; i < 2; i += 1) assert.equal((await post(b.app, '/v1/login', { username: 'shared', password: 'wrong password' })).statusCode, 401);
      const onA = await post(a.app, '/v1/login', { username: 'shared', password: PASSWORD });
      const onB = await post(b.app, '/v1/login', { username: 'shared', password: PASSWORD });
      assert.equal(onA.statusCode, 429, 'the 4 failures on two nodes add up');
      assert.equal(onB.statusCode, 429);
      assert.equal(json(onB).code, 'too_many_attempts');
      // the stores themselves hold nothing: the counters are in Redis
      assert.equal(await a.opened.latch.store.getThrottle('user:shared', Date.now()), null);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('with Redis unreachable the store counts failures, and logins still work', async () => {
    let h: Harness | null = null;
    try {
      h = await harness({ redisUrl: 'redis://127.0.0.1:1', throttleUserFailures: 3 });
      await post(h.app, '/v1/users', { username: 'offline', password: PASSWORD });
      assert.equal((await post(h.app, '/v1/login', { username: 'offline', password: PASSWORD })).statusCode, 200);
      for (let i = 0; i < 3; i += 1) await post(h.app, '/v1/login', { username: 'offline', password: 'wrong password' });
      assert.equal((await post(h.app, '/v1/login', { username: 'offline', password: PASSWORD })).statusCode, 429);
      assert.ok(await h.opened.latch.store.getThrottle('user:offline', Date.now()));
    } finally {
      await h?.close();
    }
  });
});
