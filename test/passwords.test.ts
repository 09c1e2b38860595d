// Password hashing: OWASP argon2id parameters, exact passwords, a bounded queue.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ARGON2_OPTIONS, PasswordHasher } from '../src/core/passwords.ts';
import { LatchError } from '../src/core/errors.ts';
import { harness, json, post } from './helpers.ts';

describe('password hashing', () => {
  it('uses argon2id with m=19456 KiB, t=2, p=1 and verifies exactly the given string', async () => {
    const hasher = new PasswordHasher({ concurrency: 2, maxQueue: 10 });
    const hash = await hasher.hash('pässword ');
    assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.equal(await hasher.verify(hash, 'pässword '), true);
    assert.equal(await hasher.verify(hash, 'pässword'), false);
    assert.equal(await hasher.verify(hash, 'pa\u0308ssword '), false, 'no normalisation');
    assert.equal(await hasher.verify(null, 'pässword '), false, 'unknown user: dummy hash, false');
    assert.equal(await hasher.verify('not-a-hash', 'x'), false);
    assert.equal(ARGON2_OPTIONS.memoryCost, 19456);
  });

  it('queues past its concurrency and answers overloaded past its queue', async () => {
    const hasher = new PasswordHasher({ concurrency: 1, maxQueue: 2 });
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => hasher.hash(`password-${i}`)));
    const rejected = results.filter((r) => r.status === 'rejected');
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    assert.equal(rejected.length, 2);
    for (const r of rejected) {
      const err = (r as PromiseRejectedResult).reason as LatchError;
      assert.equal(err.code, 'overloaded');
      assert.equal(err.retryAfter, 1);
    }
    assert.equal(hasher.depth, 0, 'every slot was given back');
  });

  it('a burst of logins past the queue gets 503 overloaded with Retry-After, and nothing is lost', async () => {
    const h = await harness({ hashConcurrency: 1, hashQueue: 1 });
    try {
      await post(h.app, '/v1/users', { username: 'zoe', password: 'correct horse battery' });
      const burst = await Promise.all([1, 2, 3, 4, 5, 6].map(() => post(h.app, '/v1/login', { username: 'zoe', password: 'correct horse battery' })));
      const overloaded = burst.filter((r) => r.statusCode === 503);
      assert.ok(overloaded.length >= 1, 'some were refused');
      assert.ok(burst.filter((r) => r.statusCode === 200).length >= 2, 'some got through');
      for (const r of overloaded) {
        assert.equal(json(r).code, 'overloaded');
        assert.equal(r.headers['retry-after'], '1');
      }
      assert.equal((await post(h.app, '/v1/login', { username: 'zoe', password: 'correct horse battery' })).statusCode, 200, 'and it recovers');
    } finally {
      await h.close();
    }
  });
});
