// Interop with widely used libraries, over loopback: Latch's access tokens verify with jose's
// remote JWKS and with jsonwebtoken + jwks-rsa; openid-client (a certified OAuth client)
// discovers Latch and uses its token, revocation and introspection endpoints.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';
import * as oauth from 'openid-client';
import { bearer, registerAndLogin, login, type Tokens } from './helpers.ts';
import { addClient, liveLatch, type LiveLatch } from './fixtures/loopback.ts';

const PASSWORD = 'correct horse battery';

describe('Latch tokens in other libraries', () => {
  let live: LiveLatch;
  let t: Tokens;
  before(async () => {
    live = await liveLatch();
    t = await registerAndLogin(live.app, 'wren', PASSWORD);
  });
  after(async () => live.close());

  it("jose: createRemoteJWKSet + jwtVerify with typ at+jwt (RFC 9068)", async () => {
    const jwks = createRemoteJWKSet(new URL(`${live.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(t.access_token, jwks, { issuer: live.url, audience: 'latch', typ: 'at+jwt', algorithms: ['ES256'] });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.sid, t.session_id);
    await assert.rejects(jwtVerify(t.access_token, jwks, { issuer: live.url, audience: 'someone-else' }));
  });

  it('jsonwebtoken + jwks-rsa: getSigningKey by kid, then jwt.verify', async () => {
    const keys = jwksRsa({ jwksUri: `${live.url}/.well-known/jwks.json`, cache: false });
    const { kid } = jwt.decode(t.access_token, { complete: true })!.header;
    const key = await keys.getSigningKey(kid);
    const claims = jwt.verify(t.access_token, key.getPublicKey(), { algorithms: ['ES256'], issuer: live.url, audience: 'latch' });
    assert.equal(typeof claims === 'object' && claims.sid, t.session_id);
    assert.throws(() => jwt.verify(t.access_token, key.getPublicKey(), { algorithms: ['RS256'] }), /invalid algorithm/);
  });
});

describe('openid-client against /oauth/*', () => {
  let live: LiveLatch;
  let rs: { id: string; secret: string };
  let publicClient: oauth.Configuration;
  let resourceServer: oauth.Configuration;
  before(async () => {
    live = await liveLatch();
    rs = await addClient(live.opened.latch, 'orders-api');
    await registerAndLogin(live.app, 'xia', PASSWORD);
    const options = { execute: [oauth.allowInsecureRequests], algorithm: 'oauth2' as const };
    // the first-party client is public: no client authentication, a bare client_id
    publicClient = await oauth.discovery(new URL(live.url), 'latch', undefined, oauth.None(), options);
    resourceServer = await oauth.discovery(new URL(live.url), rs.id, undefined, oauth.ClientSecretBasic(rs.secret), options);
  });
  after(async () => live.close());

  it('discovers the RFC 8414 metadata', () => {
    const m = publicClient.serverMetadata();
    assert.equal(m.issuer, live.url);
    assert.equal(m.token_endpoint, `${live.url}/oauth/token`);
    assert.equal(m.revocation_endpoint, `${live.url}/oauth/revoke`);
    assert.equal(m.introspection_endpoint, `${live.url}/oauth/introspect`);
  });

  it('refreshTokenGrant rotates the refresh token', async () => {
    const t = await login(live.app, 'xia', PASSWORD);
    const refreshed = await oauth.refreshTokenGrant(publicClient, t.refresh_token);
    assert.equal(refreshed.token_type, 'bearer');
    assert.ok(refreshed.refresh_token && refreshed.refresh_token !== t.refresh_token);
    assert.equal(refreshed.expires_in, 300);
    assert.equal((await live.app.inject({ url: '/v1/me', headers: bearer(refreshed.access_token) })).statusCode, 200);
    await assert.rejects(oauth.refreshTokenGrant(publicClient, 'not-a-refresh-token'), (err: unknown) => (err as { error?: string }).error === 'invalid_grant');
  });

  it('tokenIntrospection with client_secret_basic: active, then inactive after tokenRevocation', async () => {
    const t = await login(live.app, 'xia', PASSWORD);
    const active = await oauth.tokenIntrospection(resourceServer, t.access_token);
    assert.equal(active.active, true);
    assert.equal(active.sub, (await live.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).json<{ id: string }>().id);
    assert.equal(active.sid, t.session_id);

    await oauth.tokenRevocation(publicClient, t.access_token, { token_type_hint: 'access_token' });
    assert.equal((await oauth.tokenIntrospection(resourceServer, t.access_token)).active, false);
    assert.equal((await live.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode, 401);
  });

  it('tokenRevocation of a refresh token by an authenticated client ends the session', async () => {
    const t = await login(live.app, 'xia', PASSWORD);
    await oauth.tokenRevocation(resourceServer, t.refresh_token);
    assert.equal((await oauth.tokenIntrospection(resourceServer, t.access_token)).active, false);
  });

  it('a wrong secret is 401 invalid_client with the Basic challenge (RFC 6749 §5.2)', async () => {
    const wrong = await oauth.discovery(new URL(live.url), rs.id, undefined, oauth.ClientSecretBasic('wrong'), { execute: [oauth.allowInsecureRequests], algorithm: 'oauth2' });
    await assert.rejects(oauth.tokenIntrospection(wrong, 'x'), (err: unknown) => {
      const e = err as { status?: number; cause?: { scheme: string }[]; response?: Response };
      return e.status === 401 && e.cause?.[0]?.scheme === 'basic';
    });
  });
});
