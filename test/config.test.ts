// Configuration: defaults, env and file sources, validation naming the key, frozen result.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { ConfigError } from '../src/core/errors.ts';
import { tempDir } from './helpers.ts';

describe('configuration', () => {
  it('has the documented defaults and is frozen', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8080);
    assert.equal(c.issuer, 'http://127.0.0.1:8080');
    assert.equal(c.audience, 'latch');
    assert.equal(c.accessTtl, 300);
    assert.equal(c.refreshTtl, 2_592_000);
    assert.equal(c.sessionIdle, 604_800);
    assert.equal(c.refreshReuseGrace, 10);
    assert.equal(c.signingAlg, 'ES256');
    assert.equal(c.keyRotation, 30 * 86400);
    assert.equal(c.stalenessBudget, 5);
    assert.equal(c.pollInterval, 100);
    assert.equal(c.rateLimits, true);
    assert.ok(Object.isFrozen(c));
    assert.throws(() => {
      (c as { port: number }).port = 1;
    }, TypeError);
  });

  it('reads LATCH_* variables and derives the issuer from host and port', () => {
    const c = loadConfig({ env: { LATCH_PORT: '9090', LATCH_ACCESS_TTL: '60', LATCH_SIGNING_ALG: 'EdDSA', LATCH_KEY_ROTATION: '12h', LATCH_RATE_LIMITS: 'off', LATCH_CORS_ORIGINS: 'https://app.example.com, http://localhost:3000' } });
    assert.equal(c.port, 9090);
    assert.equal(c.issuer, 'http://127.0.0.1:9090');
    assert.equal(c.accessTtl, 60);
    assert.equal(c.signingAlg, 'EdDSA');
    assert.equal(c.keyRotation, 43_200);
    assert.equal(c.rateLimits, false);
    assert.deepEqual(c.corsOrigins, ['https://app.example.com', 'http://localhost:3000']);
  });

  it('names the key of every bad value', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ LATCH_PORT: 'eighty' }, /LATCH_PORT/],
      [{ LATCH_ACCESS_TTL: '0' }, /LATCH_ACCESS_TTL: must be a whole number from 1 to 86400/],
      [{ LATCH_ACCESS_TTL: '86401' }, /LATCH_ACCESS_TTL/],
      [{ LATCH_SIGNING_ALG: 'HS256' }, /LATCH_SIGNING_ALG: must be one of ES256, EdDSA, RS256/],
      [{ LATCH_SIGNUP: 'maybe' }, /LATCH_SIGNUP/],
      [{ LATCH_MASTER_KEY: 'short' }, /LATCH_MASTER_KEY: must be 32 random bytes/],
      [{ LATCH_ISSUER: 'ftp://x' }, /LATCH_ISSUER/],
      [{ LATCH_ISSUER: 'https://x.example/?q=1' }, /LATCH_ISSUER: must not have a query/],
      [{ LATCH_DATABASE_URL: 'mysql://x' }, /LATCH_DATABASE_URL/],
      [{ LATCH_DATABASE_URL: 'postgres://127.0.0.1/test' }, /LATCH_ISSUER: required when LATCH_DATABASE_URL is set/],
      [{ LATCH_KEY_ROTATION: 'monthly' }, /LATCH_KEY_ROTATION/],
      [{ LATCH_CORS_ORIGINS: 'https://app.example.com/path' }, /LATCH_CORS_ORIGINS/],
      [{ LATCH_SESSION_IDLE: '999999', LATCH_REFRESH_TTL: '3600' }, /LATCH_SESSION_IDLE/],
    ];
    for (const [env, message] of bad) assert.throws(() => loadConfig({ env }), (err: unknown) => err instanceof ConfigError && message.test(err.message), JSON.stringify(env));
  });

  it('warns about unknown LATCH_* variables (typos) without failing', () => {
    const warnings: string[] = [];
    loadConfig({ env: { LATCH_ACESS_TTL: '60', LATCH_TEST_POSTGRES_URL: 'x' }, warn: (m) => warnings.push(m) });
    assert.deepEqual(warnings, ['unknown environment variable LATCH_ACESS_TTL is ignored (a typo?)']);
  });

  it('reads --config FILE (camelCase), rejects unknown keys and bad values naming them, env wins', () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'latch.json');
      writeFileSync(file, JSON.stringify({ port: 7000, accessTtl: 120, audience: 'my-api' }));
      const c = loadConfig({ env: { LATCH_PORT: '7001' }, file });
      assert.equal(c.port, 7001);
      assert.equal(c.accessTtl, 120);
      assert.equal(c.audience, 'my-api');
      writeFileSync(file, JSON.stringify({ acessTtl: 120 }));
      assert.throws(() => loadConfig({ env: {}, file }), /unknown key "acessTtl"/);
      writeFileSync(file, JSON.stringify({ accessTtl: 'long' }));
      assert.throws(() => loadConfig({ env: {}, file }), /latch\.json: accessTtl: must be a whole number/);
      writeFileSync(file, JSON.stringify({ accessTtl: { nested: 1 } }));
      assert.throws(() => loadConfig({ env: {}, file }), /accessTtl: must not be an object/);
      writeFileSync(file, '{not json');
      assert.throws(() => loadConfig({ env: {}, file }), /not valid JSON/);
      assert.throws(() => loadConfig({ env: {}, file: join(tmp.dir, 'missing.json') }), /cannot read the file/);
    } finally {
      tmp.remove();
    }
  });
});
