// The OAuth standard endpoints: RFC 8414 metadata, the RFC 6749 §6 refresh grant, RFC 7009
// revocation (either token ends its session) and RFC 7662 introspection, with RFC-format
// errors, client authentication rules and per-client rate limits. No input yields 500.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/core/clock.ts';
import { buildApp } from '../src/server/app.ts';
import type { App } from '../src/server/app-types.ts';
import { bearer, harness, json, login, registerAndLogin, sleep, type Harness, type Res } from './helpers.ts';
import { addClient, basicAuth } from './fixtures/loopback.ts';
import { attackerKey, decode, signEs256 } from './fixtures/forge.ts';

const PASSWORD = 'correct horse battery';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

const form = (app: App, url: string, body: Record<string, string> | string, headers: Record<string, string> = {}): Promise<Res> =>
  app.inject({ method: 'POST', url, headers: { ...FORM, ...headers }, payload: typeof body === 'string' ? body : new URLSearchParams(body).toString() });

/** An RFC 6749 §5.2 error: JSON {error, error_description}, never problem+json, never cached. */
function assertOAuthError(res: Res, status: number, error: string): void {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = json(res);
  assert.equal(body.error, error, res.body);
  assert.equal(typeof body.error_description, 'string');
  assert.equal(res.headers['cache-control'], 'no-store');
  if (status === 401) assert.equal(res.headers['www-authenticate'], 'Basic realm="latch"');
}

const status = async (app: App, token: string): Promise<number> => (await app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode;

describe('RFC 8414 metadata', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ issuer: 'https://auth.example.com' });
  });
  after(async () => h.close());

  it('has the required fields and where verifiers find the feed', async () => {
    const res = await h.app.inject({ url: '/.well-known/oauth-authorization-server' });
    assert.equal(res.statusCode, 200);
    const m = json(res);
    assert.equal(m.issuer, 'https://auth.example.com');
    assert.equal(m.jwks_uri, 'https://auth.example.com/.well-known/jwks.json');
    assert.equal(m.token_endpoint, 'https://auth.example.com/oauth/token');
    assert.equal(m.revocation_endpoint, 'https://auth.example.com/oauth/revoke');
    assert.equal(m.introspection_endpoint, 'https://auth.example.com/oauth/introspect');
    assert.deepEqual(m.response_types_supported, []);
    assert.deepEqual(m.grant_types_supported, ['refresh_token']);
    assert.deepEqual(m.token_endpoint_auth_methods_supported, ['none', 'client_secret_basic', 'client_secret_post']);
    assert.deepEqual(m.revocation_endpoint_auth_methods_supported, ['none', 'client_secret_basic', 'client_secret_post']);
    assert.deepEqual(m.introspection_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post']);
    assert.equal(m.latch_revocations_endpoint, 'https://auth.example.com/v1/revocations');
    assert.equal(m.latch_revocations_stream_endpoint, 'https://auth.example.com/v1/revocations/stream');
    assert.equal(m.latch_access_token_max_lifetime, 300);
  });
});

describe('POST /oauth/token (refresh grant)', () => {
  let h: Harness;
  let rs: { id: string; secret: string };
  before(async () => {
    h = await harness({ refreshReuseGrace: 0 });
    rs = await addClient(h.opened.latch, 'orders-api');
    await registerAndLogin(h.app, 'tess', PASSWORD);
  });
  after(async () => h.close());

  it('rotates a refresh token for a public client that sends no authentication, with no-store', async () => {
    const t = await login(h.app, 'tess', PASSWORD);
    const res = await form(h.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers.pragma, 'no-cache');
    const body = json(res);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 300);
    assert.equal(body.session_id, t.session_id);
    assert.notEqual(body.refresh_token, t.refresh_token);
    assert.equal(await status(h.app, String(body.access_token)), 200);
    // the same rotation rules as /v1/refresh: the old one is now reuse, which ends the session
    assertOAuthError(await form(h.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token }), 400, 'invalid_grant');
    assert.equal(await status(h.app, String(body.access_token)), 401);
  });

  it('accepts the first-party client naming itself with a bare client_id', async () => {
    const t = await login(h.app, 'tess', PASSWORD);
    const res = await form(h.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'latch' });
    assert.equal(res.statusCode, 200, res.body);
  });

  it('client authentication, when sent, must be valid; resource servers may not refresh users’ sessions', async () => {
    const t = await login(h.app, 'tess', PASSWORD);
    const grant = { grant_type: 'refresh_token', refresh_token: t.refresh_token };
    assertOAuthError(await form(h.app, '/oauth/token', { ...grant, client_id: 'nobody' }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/token', { ...grant, client_id: rs.id }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/token', grant, { authorization: basicAuth({ id: rs.id, secret: 'wrong' }) }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/token', { ...grant, client_id: rs.id, client_secret: 'wrong' }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/token', grant, { authorization: 'Basic %%%' }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/token', grant, { authorization: basicAuth(rs) }), 400, 'unauthorized_client');
    assertOAuthError(await form(h.app, '/oauth/token', { ...grant, client_secret: rs.secret }, { authorization: basicAuth(rs) }), 400, 'invalid_request');
    // none of these consumed the refresh token
    assert.equal((await form(h.app, '/oauth/token', grant)).statusCode, 200);
  });

  it('answers malformed requests in the RFC format', async () => {
    const t = await login(h.app, 'tess', PASSWORD);
    assertOAuthError(await form(h.app, '/oauth/token', { refresh_token: t.refresh_token }), 400, 'invalid_request');
    assertOAuthError(await form(h.app, '/oauth/token', { grant_type: 'password', username: 'tess', password: PASSWORD }), 400, 'unsupported_grant_type');
    assertOAuthError(await form(h.app, '/oauth/token', { grant_type: 'refresh_token' }), 400, 'invalid_request');
    assertOAuthError(await form(h.app, '/oauth/token', `grant_type=refresh_token&refresh_token=${t.refresh_token}&refresh_token=x`), 400, 'invalid_request');
    assertOAuthError(await form(h.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token, scope: 'admin' }), 400, 'invalid_scope');
    assertOAuthError(await form(h.app, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'garbage' }), 400, 'invalid_grant');
    assertOAuthError(await h.app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/json' }, payload: '{"grant_type":"refresh_token"}' }), 400, 'invalid_request');
    assertOAuthError(await h.app.inject({ method: 'POST', url: '/oauth/token' }), 400, 'invalid_request');
    assertOAuthError(await form(h.app, '/oauth/token', `refresh_token=${'a'.repeat(20_000)}`), 413, 'invalid_request');
    const get = await h.app.inject({ url: '/oauth/token' });
    assertOAuthError(get, 405, 'invalid_request');
    assert.equal(get.headers.allow, 'POST');
    assertOAuthError(await form(h.app, '/oauth/authorize', {}), 404, 'invalid_request');
    // a form body is still refused where JSON is expected
    assert.equal((await form(h.app, '/v1/refresh', { refresh_token: t.refresh_token })).statusCode, 415);
  });
});

describe('POST /oauth/revoke (RFC 7009)', () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;
  let rs: { id: string; secret: string };
  before(async () => {
    h = await harness({}, { clock });
    rs = await addClient(h.opened.latch, 'orders-api');
    await registerAndLogin(h.app, 'uri', PASSWORD);
  });
  after(async () => h.close());

  const revoke = (body: Record<string, string>, headers: Record<string, string> = {}): Promise<Res> => form(h.app, '/oauth/revoke', body, headers);

  it('revoking an access token ends its session: the token and its refresh token die', async () => {
    const t = await login(h.app, 'uri', PASSWORD);
    const other = await login(h.app, 'uri', PASSWORD);
    const res = await revoke({ token: t.access_token, token_type_hint: 'access_token' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '');
    assert.equal(await status(h.app, t.access_token), 401);
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/refresh', payload: { refresh_token: t.refresh_token } })).statusCode, 401);
    assert.equal(await status(h.app, other.access_token), 200, 'only that session');
    const audit = await h.opened.latch.store.listAudit(0, 1000);
    assert.ok(audit.some((e) => e.type === 'session.revoked' && e.detail?.via === 'oauth_revoke' && e.detail?.session_id === t.session_id));
  });

  it('revoking a refresh token ends its session (whatever the hint says)', async () => {
    const t = await login(h.app, 'uri', PASSWORD);
    assert.equal((await revoke({ token: t.refresh_token, token_type_hint: 'access_token' })).statusCode, 200);
    assert.equal(await status(h.app, t.access_token), 401);
  });

  it('an expired access token still names its session, which it ends', async () => {
    const t = await login(h.app, 'uri', PASSWORD);
    clock.advance(3_600_000);
    try {
      assert.equal((await revoke({ token: t.access_token })).statusCode, 200);
      const refresh = await h.app.inject({ method: 'POST', url: '/v1/refresh', payload: { refresh_token: t.refresh_token } });
      assert.equal(refresh.statusCode, 401, 'the session is over');
    } finally {
      clock.set(Date.now());
    }
  });

  it('answers 200 for tokens that are garbage, unknown, already revoked or forged, and changes nothing', async () => {
    const t = await login(h.app, 'uri', PASSWORD);
    const { header, payload } = decode(t.access_token);
    const forged = signEs256(header, payload, attackerKey());
    for (const token of ['garbage', 'a.b.c', forged, 'x'.repeat(5000), t.refresh_token.slice(1)]) {
      const res = await revoke({ token });
      assert.equal(res.statusCode, 200, token.slice(0, 20));
    }
    assert.equal(await status(h.app, t.access_token), 200, 'a forged copy did not end the real session');
    assert.equal((await revoke({ token: t.access_token })).statusCode, 200);
    assert.equal((await revoke({ token: t.access_token })).statusCode, 200, 'twice is fine');
  });

  it('client authentication is optional, but when sent it must be valid', async () => {
    const t = await login(h.app, 'uri', PASSWORD);
    assertOAuthError(await revoke({ token: t.access_token }, { authorization: basicAuth({ id: rs.id, secret: 'nope' }) }), 401, 'invalid_client');
    assertOAuthError(await revoke({ token: t.access_token, client_id: rs.id, client_secret: 'nope' }), 401, 'invalid_client');
    assert.equal(await status(h.app, t.access_token), 200, 'a refused request revokes nothing');
    assert.equal((await revoke({ token: t.access_token }, { authorization: basicAuth(rs) })).statusCode, 200);
    assert.equal(await status(h.app, t.access_token), 401);
  });

  it('a request without a token is invalid_request', async () => {
    assertOAuthError(await revoke({}), 400, 'invalid_request');
    assertOAuthError(await form(h.app, '/oauth/revoke', 'token=a&token=b'), 400, 'invalid_request');
  });
});

describe('POST /oauth/introspect (RFC 7662)', () => {
  let h: Harness;
  let auth: string;
  before(async () => {
    h = await harness({ stalenessBudget: 1 });
    auth = basicAuth(await addClient(h.opened.latch, 'orders-api'));
    await registerAndLogin(h.app, 'vera', PASSWORD);
  });
  after(async () => h.close());

  const introspect = async (token: string): Promise<Record<string, unknown>> => {
    const res = await form(h.app, '/oauth/introspect', { token }, { authorization: auth });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    return json(res);
  };

  it('needs a client credential', async () => {
    const t = await login(h.app, 'vera', PASSWORD);
    assertOAuthError(await form(h.app, '/oauth/introspect', { token: t.access_token }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/introspect', { token: t.access_token, client_id: 'latch' }), 401, 'invalid_client');
    assertOAuthError(await form(h.app, '/oauth/introspect', { token: t.access_token }, { authorization: basicAuth({ id: 'x', secret: 'y' }) }), 401, 'invalid_client');
  });

  it('a live access token is active, with its claims', async () => {
    const t = await login(h.app, 'vera', PASSWORD);
    const body = await introspect(t.access_token);
    const { payload } = decode(t.access_token);
    assert.deepEqual(body, {
      active: true,
      token_type: 'Bearer',
      iss: payload.iss,
      sub: payload.sub,
      aud: payload.aud,
      client_id: payload.client_id,
      iat: payload.iat,
      exp: payload.exp,
      jti: payload.jti,
      sid: t.session_id,
    });
  });

  it('anything not live is active=false: revoked, forged, garbage, refresh tokens', async () => {
    const t = await login(h.app, 'vera', PASSWORD);
    const { header, payload } = decode(t.access_token);
    for (const token of ['garbage', 'a.b.c', signEs256(header, payload, attackerKey()), t.refresh_token]) {
      assert.deepEqual(await introspect(token), { active: false }, token.slice(0, 12));
    }
    await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) });
    assert.deepEqual(await introspect(t.access_token), { active: false });
  });

  it('answers 503 temporarily_unavailable rather than guess when its revocation state is stale', async () => {
    const t = await login(h.app, 'vera', PASSWORD);
    const store = h.opened.latch.store;
    const original = store.revocationHead.bind(store);
    store.revocationHead = async () => {
      throw new Error('down');
    };
    try {
      await sleep(1_300);
      const res = await form(h.app, '/oauth/introspect', { token: t.access_token }, { authorization: auth });
      assert.equal(res.statusCode, 503);
      assert.equal(json(res).error, 'temporarily_unavailable');
      assert.equal(res.headers['retry-after'], '1');
    } finally {
      store.revocationHead = original;
    }
    await h.opened.latch.revocations.wake();
    assert.equal((await introspect(t.access_token)).active, true);
  });
});

describe('rate limits on revocation and introspection', () => {
  let h: Harness;
  let unlimited: App;
  let auth: string;
  before(async () => {
    h = await harness();
    unlimited = await buildApp(h.opened.latch, { logLevel: 'silent', rateLimits: false });
    auth = basicAuth(await addClient(h.opened.latch, 'chatty'));
  });
  after(async () => {
    await unlimited.close();
    await h.close();
  });

  it('limit each client, answer 429 rate_limited with Retry-After, and lift with rateLimits=false', async () => {
    const introspections = await Promise.all(Array.from({ length: 230 }, () => form(h.app, '/oauth/introspect', { token: 'x' }, { authorization: auth })));
    const limited = introspections.filter((r) => r.statusCode === 429);
    assert.ok(limited.length > 0 && limited.length <= 30, `${limited.length} limited`);
    assertOAuthError(limited[0]!, 429, 'rate_limited');
    assert.ok(Number(limited[0]!.headers['retry-after']) >= 1);

    const revocations = await Promise.all(Array.from({ length: 40 }, () => form(h.app, '/oauth/revoke', { token: 'x' })));
    assert.ok(revocations.some((r) => r.statusCode === 429), 'per address, without a credential');

    const free = await Promise.all(Array.from({ length: 300 }, () => form(unlimited, '/oauth/introspect', { token: 'x' }, { authorization: auth })));
    assert.deepEqual(new Set(free.map((r) => r.statusCode)), new Set([200]));
  });
});

describe('no input yields 500', () => {
  let h: Harness;
  let auth: string;
  before(async () => {
    h = await harness();
    auth = basicAuth(await addClient(h.opened.latch, 'fuzz'));
  });
  after(async () => h.close());

  it('survives odd bodies, headers and encodings on every /oauth endpoint', async () => {
    const bodies = ['', '=', '&&&', 'token', 'token=%', 'token=%E0%A4%A', 'token=%00', '__proto__=1&token=x', 'constructor=x&token=y', 'grant_type[]=x', 'token=' + '%FF'.repeat(100), '\u0000\u0001'];
    const headerSets: Record<string, string>[] = [
      FORM,
      { 'content-type': 'application/x-www-form-urlencoded; charset=latin1' },
      { 'content-type': 'multipart/form-data; boundary=x' },
      { 'content-type': 'text/plain' },
      { ...FORM, authorization: 'Basic' },
      { ...FORM, authorization: 'Basic ====' },
      { ...FORM, authorization: `Basic ${Buffer.from(':').toString('base64')}` },
      { ...FORM, authorization: `Basic ${Buffer.from('%ZZ:%ZZ').toString('base64')}` },
      { ...FORM, authorization: `Basic ${Buffer.from('\u00ff\u00fe:x').toString('base64')}` },
      { ...FORM, authorization: 'Bearer x' },
      { ...FORM, authorization: auth },
    ];
    for (const url of ['/oauth/token', '/oauth/revoke', '/oauth/introspect']) {
      for (const headers of headerSets) {
        for (const payload of bodies) {
          const res = await h.app.inject({ method: 'POST', url, headers, payload });
          assert.ok(res.statusCode < 500, `${url} ${JSON.stringify(headers)} ${JSON.stringify(payload)}: ${res.statusCode} ${res.body}`);
          assert.ok(res.statusCode === 200 || typeof json(res).error === 'string', `${url}: ${res.body}`);
        }
      }
    }
  });
});
