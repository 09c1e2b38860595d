// `latch/verify` in this process against a listening Latch: the server's claim rules, key
// handling (refetch on an unknown kid, rate-limited; a disabled kid never again), the cache of
// verified tokens (second sighting, still checking expiry and revocation), the adapters
// (Fastify, Express, node:http, Fetch Request), start-up failures and close().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { createVerifier, isVerifyError, VerifyError, type LatchClaims, type Verifier, type VerifyErrorCode } from 'latch/verify';
import { bearer, json, login, post, registerAndLogin, sleep, type Tokens } from './helpers.ts';
import { addClient, eventually, freePort, liveLatch, type LiveLatch } from './fixtures/loopback.ts';
import { attackerKey, b64, decode, hmacWith, kidOf, signEs256 } from './fixtures/forge.ts';

const PASSWORD = 'correct horse battery';

/** fetch that records every URL and can rewrite the JWKS the verifier sees. */
function recordingFetch(rewriteJwks?: (body: { keys: { kid: string }[] }) => unknown): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = [];
  const wrapped: typeof fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    urls.push(url);
    const res = await fetch(input, init);
    if (!rewriteJwks || !url.endsWith('/.well-known/jwks.json')) return res;
    const body = rewriteJwks((await res.json()) as { keys: { kid: string }[] });
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json', 'cache-control': res.headers.get('cache-control') ?? '' } });
  };
  return { fetch: wrapped, urls };
}

async function codeOf(promise: Promise<LatchClaims>): Promise<VerifyErrorCode | 'accepted'> {
  try {
    await promise;
    return 'accepted';
  } catch (err) {
    if (!isVerifyError(err)) throw err;
    return err.code;
  }
}

describe('latch/verify: the server’s claim rules', () => {
  let live: LiveLatch;
  let verifier: Verifier;
  let t: Tokens;
  before(async () => {
    live = await liveLatch();
    verifier = await createVerifier({ issuer: live.url, audience: 'latch', client: await addClient(live.opened.latch, 'rules') });
    t = await registerAndLogin(live.app, 'yan', PASSWORD);
  });
  after(async () => {
    await verifier.close();
    await live.close();
  });

  /** Re-signs the genuine token with Latch's own key after `change`: only the claim rules can refuse it. */
  const resigned = (change: (header: Record<string, unknown>, payload: Record<string, unknown>) => void): string => {
    const { header, payload } = decode(t.access_token);
    change(header, payload);
    return signEs256(header, payload, live.opened.latch.keyRing.signingKey().privateKey);
  };
  const now = (): number => Math.floor(Date.now() / 1000);

  it('accepts the genuine token with typed claims', async () => {
    const claims = await verifier.verify(t.access_token);
    assert.equal(claims.sid, t.session_id);
    assert.equal(claims.iss, live.url);
    assert.equal(claims.aud, 'latch');
    assert.ok(Object.isFrozen(claims));
    assert.equal(await codeOf(verifier.verify(resigned((_h, p) => (p.aud = ['other', 'latch'])))), 'accepted', 'an audience list that includes ours');
  });

  const cases: [string, VerifyErrorCode, () => string][] = [
    ['wrong issuer', 'claim_invalid', () => resigned((_h, p) => (p.iss = 'https://evil.example'))],
    ['wrong audience', 'claim_invalid', () => resigned((_h, p) => (p.aud = 'other'))],
    ['no exp', 'claim_invalid', () => resigned((_h, p) => delete p.exp)],
    ['no iat', 'claim_invalid', () => resigned((_h, p) => delete p.iat)],
    ['exp − iat longer than the issuer allows', 'claim_invalid', () => resigned((_h, p) => (p.exp = (p.iat as number) + 301))],
    ['exp before iat', 'claim_invalid', () => resigned((_h, p) => (p.exp = (p.iat as number) - 1))],
    ['expired beyond the 5 s tolerance', 'token_expired', () => resigned((_h, p) => ((p.iat = now() - 306), (p.exp = now() - 6)))],
    ['issued in the future', 'token_not_yet_valid', () => resigned((_h, p) => ((p.iat = now() + 60), (p.exp = now() + 300)))],
    ['nbf in the future', 'token_not_yet_valid', () => resigned((_h, p) => (p.nbf = now() + 60))],
    ['no sid', 'claim_invalid', () => resigned((_h, p) => delete p.sid)],
    ['no sub', 'claim_invalid', () => resigned((_h, p) => (p.sub = ''))],
    ['no jti', 'claim_invalid', () => resigned((_h, p) => delete p.jti)],
    ['no client_id', 'claim_invalid', () => resigned((_h, p) => delete p.client_id)],
    ['typ JWT', 'token_malformed', () => resigned((h) => (h.typ = 'JWT'))],
    ['no typ', 'token_malformed', () => resigned((h) => delete h.typ)],
    ['a crit header', 'token_malformed', () => resigned((h) => (h.crit = ['exp']))],
    ['no kid', 'token_malformed', () => resigned((h) => delete h.kid)],
    ['an unsigned JWS (alg none, empty signature)', 'token_malformed', () => `${b64({ ...decode(t.access_token).header, alg: 'none' })}.${t.access_token.split('.')[1]}.`],
    ['alg none with a signature', 'algorithm_not_allowed', () => `${b64({ ...decode(t.access_token).header, alg: 'none' })}.${t.access_token.split('.')[1]}.AAAA`],
    ['HS256 keyed with the public JWK', 'algorithm_not_allowed', () => hmacWith({ ...decode(t.access_token).header, alg: 'HS256' }, decode(t.access_token).payload, JSON.stringify(live.opened.latch.keyRing.jwks().keys[0]))],
    ['RS256 header on the ES256 key', 'algorithm_not_allowed', () => resigned((h) => (h.alg = 'RS256'))],
    ['signed by an attacker under the real kid', 'signature_invalid', () => signEs256(decode(t.access_token).header, decode(t.access_token).payload, attackerKey())],
    ['an embedded jwk is not followed', 'signature_invalid', () => {
      const key = attackerKey();
      return signEs256({ ...decode(t.access_token).header, jwk: { kty: 'EC', crv: 'P-256' }, jku: 'https://evil.example/jwks' }, decode(t.access_token).payload, key);
    }],
    ['a flipped payload bit', 'signature_invalid', () => {
      const [h, , s] = t.access_token.split('.');
      return `${h}.${b64({ ...decode(t.access_token).payload, sub: 'someone-else' })}.${s}`;
    }],
    ['not a JWS', 'token_malformed', () => 'garbage'],
    ['four segments', 'token_malformed', () => `${t.access_token}.x`],
    ['characters outside base64url in the payload', 'signature_invalid', () => t.access_token.replace('.', '.+')],
    ['characters outside base64url in the signature', 'token_malformed', () => `${t.access_token.slice(0, -2)}+/`],
    ['a payload character swapped for one latin1 would fold onto it (U+0141 for A)', 'signature_invalid', () => {
      const [h, p, s] = t.access_token.split('.');
      const i = p!.indexOf('A') >= 0 ? p!.indexOf('A') : 0;
      return `${h}.${p!.slice(0, i)}\u0141${p!.slice(i + 1)}.${s}`;
    }],
    ['an empty segment', 'token_malformed', () => `${t.access_token.split('.')[0]}..${t.access_token.split('.')[2]}`],
    ['too long', 'token_malformed', () => `${t.access_token}${'A'.repeat(5000)}`],
    ['header not JSON', 'token_malformed', () => `${b64('not json')}.${t.access_token.split('.').slice(1).join('.')}`],
  ];
  for (const [name, code, make] of cases) {
    it(`refuses ${name}: ${code}`, async () => {
      assert.equal(await codeOf(verifier.verify(make())), code);
    });
  }

  it('a non-string token is token_malformed, not a crash', async () => {
    assert.equal(await codeOf(verifier.verify(undefined as unknown as string)), 'token_malformed');
  });

  it('errors are typed, with a status and the RFC 6750 challenge, and never contain the token', async () => {
    const err = await verifier.verify('garbage').then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof VerifyError);
    assert.equal(err.status, 401);
    assert.equal(err.challenge, 'Bearer error="invalid_token"');
    assert.ok(!err.message.includes('garbage'));
    const revoked = await login(live.app, 'yan', PASSWORD);
    await live.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(revoked.access_token) });
    assert.ok(await eventually(async () => (await codeOf(verifier.verify(revoked.access_token))) === 'token_revoked', 1_000));
  });
});

describe('latch/verify: keys', () => {
  let live: LiveLatch;
  let client: { id: string; secret: string };
  before(async () => {
    live = await liveLatch();
    client = await addClient(live.opened.latch, 'keys');
    await live.opened.latch.register({ username: 'root', password: PASSWORD }, null, { admin: true, bypassSignup: true });
  });
  after(async () => live.close());

  it('refetches the JWKS on an unknown kid (a key published after it started), at most once per cooldown', async () => {
    const t = await registerAndLogin(live.app, 'zed', PASSWORD);
    let hide = true;
    const recorder = recordingFetch((body) => (hide ? { keys: [] } : body));
    const verifier = await createVerifier({ issuer: live.url, audience: 'latch', client, fetch: recorder.fetch, unknownKidCooldownSeconds: 30 });
    try {
      const jwksFetches = (): number => recorder.urls.filter((u) => u.endsWith('/jwks.json')).length;
      assert.deepEqual(verifier.status().keys, []);
      hide = false;
      const before = jwksFetches();
      assert.equal((await verifier.verify(t.access_token)).sid, t.session_id, 'found after one refetch');
      assert.equal(jwksFetches(), before + 1);
      // random kids cannot make it fetch again and again
      const { payload } = decode(t.access_token);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => codeOf(verifier.verify(signEs256({ alg: 'ES256', typ: 'at+jwt', kid: `unknown-${i}` }, payload, attackerKey())))),
      );
      assert.deepEqual(new Set(results), new Set(['unknown_key']));
      assert.equal(jwksFetches(), before + 1, 'inside the cooldown: no refetch');
    } finally {
      await verifier.close();
    }
  });

  it('a disabled kid is never accepted again, even when a JWKS still lists it', async () => {
    const admin = await login(live.app, 'root', PASSWORD);
    const t = await login(live.app, 'zed', PASSWORD);
    const oldKid = kidOf(t.access_token);
    let stale: unknown = null;
    const recorder = recordingFetch((body) => {
      stale ??= body;
      // a mirror that never learned about the rotation
      return { keys: [...(stale as { keys: unknown[] }).keys, ...body.keys] };
    });
    const verifier = await createVerifier({ issuer: live.url, audience: 'latch', client, fetch: recorder.fetch });
    try {
      assert.equal(await codeOf(verifier.verify(t.access_token)), 'accepted');
      const rotated = await post(live.app, '/v1/admin/keys/rotate', { emergency: true }, bearer(admin.access_token));
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.ok(await eventually(async () => (await codeOf(verifier.verify(t.access_token))) === 'key_disabled', 1_000));
      await sleep(100);
      assert.ok(!verifier.status().keys.includes(oldKid), 'left out of every later key set');
      assert.equal(await codeOf(verifier.verify(t.access_token)), 'key_disabled');
      const fresh = await login(live.app, 'zed', PASSWORD);
      assert.notEqual(kidOf(fresh.access_token), oldKid);
      assert.equal(await codeOf(verifier.verify(fresh.access_token)), 'accepted');
      assert.ok(json(rotated).kid === kidOf(fresh.access_token));
    } finally {
      await verifier.close();
    }
  });
});

describe('latch/verify: the cache of verified tokens', () => {
  let live: LiveLatch;
  let client: { id: string; secret: string };
  before(async () => {
    live = await liveLatch();
    client = await addClient(live.opened.latch, 'cache');
    await registerAndLogin(live.app, 'abe', PASSWORD);
  });
  after(async () => live.close());

  it('admits a token on its second sighting, and still refuses it once revoked', async () => {
    const verifier = await createVerifier({ issuer: live.url, audience: 'latch', client });
    try {
      const t = await login(live.app, 'abe', PASSWORD);
      await verifier.verify(t.access_token);
      assert.equal(verifier.status().cachedTokens, 0, 'not on first sight');
      await verifier.verify(t.access_token);
      assert.equal(verifier.status().cachedTokens, 1, 'on the second');
      await verifier.verify(t.access_token);
      await live.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) });
      assert.ok(await eventually(async () => (await codeOf(verifier.verify(t.access_token))) === 'token_revoked', 1_000), 'a cache hit checks revocation');
    } finally {
      await verifier.close();
    }
  });

  it('still checks expiry and freshness on a cache hit', async () => {
    let offsetMs = 0;
    const verifier = await createVerifier({ issuer: live.url, audience: 'latch', client, now: () => Date.now() + offsetMs, stalenessBudgetSeconds: 3 });
    try {
      const t = await login(live.app, 'abe', PASSWORD);
      await verifier.verify(t.access_token);
      await verifier.verify(t.access_token);
      assert.equal(verifier.status().cachedTokens, 1);
      offsetMs = 10_000;
      assert.equal(await codeOf(verifier.verify(t.access_token)), 'revocation_state_stale', 'its clock jumped past the last confirmation');
      // the next heartbeat confirms the state again, at the verifier's (moved) time
      assert.ok(await eventually(async () => verifier.status().fresh, 3_000));
      assert.equal(await codeOf(verifier.verify(t.access_token)), 'accepted');
      offsetMs = 306_000;
      assert.ok(await eventually(async () => verifier.status().fresh, 3_000));
      assert.equal(await codeOf(verifier.verify(t.access_token)), 'token_expired', 'a cached token expires like any other');
      assert.equal(verifier.status().cachedTokens, 0, 'and leaves the cache');
    } finally {
      await verifier.close();
    }
  });

  it('is bounded, and can be turned off', async () => {
    const small = await createVerifier({ issuer: live.url, audience: 'latch', client, cacheSize: 2 });
    const none = await createVerifier({ issuer: live.url, audience: 'latch', client, cacheSize: 0 });
    try {
      for (let i = 0; i < 5; i++) {
        const t = await login(live.app, 'abe', PASSWORD);
        for (let j = 0; j < 3; j++) {
          await small.verify(t.access_token);
          await none.verify(t.access_token);
        }
      }
      assert.equal(small.status().cachedTokens, 2);
      assert.equal(none.status().cachedTokens, 0);
    } finally {
      await small.close();
      await none.close();
    }
  });
});

describe('latch/verify: adapters', () => {
  let live: LiveLatch;
  let verifier: Verifier;
  let t: Tokens;
  before(async () => {
    live = await liveLatch();
    verifier = await createVerifier({ issuer: live.url, audience: 'latch', client: await addClient(live.opened.latch, 'adapters') });
    t = await registerAndLogin(live.app, 'cal', PASSWORD);
  });
  after(async () => {
    await verifier.close();
    await live.close();
  });

  it('fastify(): request.auth on success; 401 problem+json with the Bearer challenge otherwise', async () => {
    const app = Fastify();
    app.decorateRequest('auth', null);
    app.addHook('onRequest', verifier.fastify());
    app.get('/orders', async (request) => ({ user: (request as unknown as { auth: LatchClaims }).auth.sub }));
    try {
      const ok = await app.inject({ url: '/orders', headers: bearer(t.access_token) });
      assert.equal(ok.statusCode, 200);
      assert.equal(ok.json<{ user: string }>().user, decode(t.access_token).payload.sub);
      const missing = await app.inject({ url: '/orders' });
      assert.equal(missing.statusCode, 401);
      assert.equal(missing.headers['www-authenticate'], 'Bearer');
      const bad = await app.inject({ url: '/orders', headers: bearer('garbage') });
      assert.equal(bad.statusCode, 401);
      assert.equal(bad.headers['www-authenticate'], 'Bearer error="invalid_token"');
      assert.match(String(bad.headers['content-type']), /^application\/problem\+json/);
      assert.equal(bad.json<{ code: string }>().code, 'invalid_token');
    } finally {
      await app.close();
    }
  });

  it('express(): req.auth on success, 401 otherwise', async () => {
    const app = express();
    app.use(verifier.express());
    app.get('/orders', (req, res) => void res.json({ user: (req as unknown as { auth: LatchClaims }).auth.sub }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/orders`;
    try {
      const ok = await fetch(url, { headers: bearer(t.access_token) });
      assert.equal(ok.status, 200);
      assert.equal(((await ok.json()) as { user: string }).user, decode(t.access_token).payload.sub);
      const bad = await fetch(url, { headers: bearer('garbage') });
      assert.equal(bad.status, 401);
      assert.equal(bad.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
      assert.equal(((await bad.json()) as { code: string }).code, 'invalid_token');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('authenticate(): node:http IncomingMessage and Fetch Request', async () => {
    const server = createServer((req, res) => {
      verifier.authenticate(req).then(
        (claims) => res.end(claims.sid),
        (err: unknown) => {
          res.statusCode = isVerifyError(err) ? err.status : 500;
          res.end(isVerifyError(err) ? err.code : 'bug');
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      assert.equal(await (await fetch(url, { headers: bearer(t.access_token) })).text(), t.session_id);
      const none = await fetch(url);
      assert.equal(none.status, 401);
      assert.equal(await none.text(), 'token_missing');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal((await verifier.authenticate(new Request('https://api.example/orders', { headers: bearer(t.access_token) }))).sid, t.session_id);
    assert.equal(await codeOf(verifier.authenticate(new Request('https://api.example/orders', { headers: { authorization: 'Basic abc' } }))), 'token_missing');
  });

  it('after close(), every call is 503 verifier_closed', async () => {
    const other = await createVerifier({ issuer: live.url, audience: 'latch', client: await addClient(live.opened.latch, 'closing') });
    await other.close();
    const err = await other.verify(t.access_token).catch((e: unknown) => e);
    assert.ok(isVerifyError(err));
    assert.equal(err.code, 'verifier_closed');
    assert.equal(err.status, 503);
    const app = Fastify();
    app.addHook('onRequest', other.fastify());
    app.get('/', async () => 'ok');
    const res = await app.inject({ url: '/', headers: bearer(t.access_token) });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '1');
    await app.close();
  });
});

describe('latch/verify: start-up', () => {
  it('refuses bad options with a TypeError', async () => {
    const client = { id: 'a', secret: 'b' };
    await assert.rejects(createVerifier({ issuer: 'ftp://x', audience: 'latch', client }), TypeError);
    await assert.rejects(createVerifier({ issuer: 'http://127.0.0.1:1', audience: '', client }), TypeError);
    await assert.rejects(createVerifier({ issuer: 'http://127.0.0.1:1', audience: 'latch', client: { id: '', secret: '' } }), TypeError);
    await assert.rejects(createVerifier({ issuer: 'http://127.0.0.1:1', audience: 'latch', client, stalenessBudgetSeconds: -1 }), TypeError);
  });

  it('an issuer that cannot be reached is issuer_unavailable after the start timeout', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(createVerifier({ issuer: `http://127.0.0.1:${port}`, audience: 'latch', client: { id: 'a', secret: 'b' }, startTimeoutSeconds: 0.5 }), (err: unknown) => isVerifyError(err) && err.code === 'issuer_unavailable');
    assert.ok(Date.now() - started < 3_000);
  });

  it('a wrong secret, or metadata naming another issuer, is issuer_unavailable', async () => {
    const live = await liveLatch();
    try {
      const client = await addClient(live.opened.latch, 'start');
      await assert.rejects(
        createVerifier({ issuer: live.url, audience: 'latch', client: { id: client.id, secret: 'wrong' }, startTimeoutSeconds: 0.3 }),
        (err: unknown) => isVerifyError(err) && err.code === 'issuer_unavailable' && /401/.test(err.message),
      );
      await assert.rejects(
        createVerifier({ issuer: live.url.replace('127.0.0.1', 'localhost'), audience: 'latch', client, startTimeoutSeconds: 0.3 }),
        (err: unknown) => isVerifyError(err) && err.code === 'issuer_unavailable' && /issuer/.test(err.message),
      );
    } finally {
      await live.close();
    }
  });
});

describe('latch/verify: the in-memory revocation set', () => {
  it('finds every revoked session among many, none that is not, and forgets entries at their expiry', async () => {
    const { RevocationSet } = await import('../src/core/revocation-set.ts');
    const set = new RevocationSet();
    const now = Date.now();
    const ids = Array.from({ length: 50_000 }, (_, i) => `session-${i}`);
    ids.forEach((id, i) => set.revokeSession(id, Math.floor(now / 1000) + (i % 2 === 0 ? 10 : 1000), now));
    set.revokeSession('already-over', Math.floor(now / 1000) - 1, now);
    assert.equal(set.sessionCount, 50_000);
    assert.ok(ids.every((id) => set.isSessionRevoked(id)));
    assert.ok(Array.from({ length: 50_000 }, (_, i) => `other-${i}`).every((id) => !set.isSessionRevoked(id)));
    assert.equal(set.isSessionRevoked('already-over'), false);
    assert.equal(set.prune(now + 60_000), 25_000, 'the ones expiring in 10 s');
    assert.ok(ids.every((id, i) => set.isSessionRevoked(id) === (i % 2 === 1)));
    assert.equal(set.prune(now + 2_000_000), 25_000);
    assert.ok(ids.every((id) => !set.isSessionRevoked(id)), 'after the rebuild too');
    set.revokeSession('late', Math.floor(now / 1000) + 3_000, now + 2_000_000);
    assert.equal(set.isSessionRevoked('late'), true);
  });
});
