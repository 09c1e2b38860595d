// Tokens an attacker can craft: every one must be refused with 401 invalid_token.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { bearer, harness, json, registerAndLogin, type Harness, type Tokens } from './helpers.ts';

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const parts = (token: string): { header: Record<string, unknown>; payload: Record<string, unknown>; sig: string } => {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()), payload: JSON.parse(Buffer.from(p!, 'base64url').toString()), sig: s! };
};

describe('forged and malformed access tokens', () => {
  let h: Harness;
  let t: Tokens;
  before(async () => {
    h = await harness();
    t = await registerAndLogin(h.app);
  });
  after(async () => h.close());

  const refused = async (token: string, name: string): Promise<void> => {
    const res = await h.app.inject({ url: '/v1/me', headers: bearer(token) });
    assert.equal(res.statusCode, 401, `${name}: ${res.body}`);
    assert.equal(json(res).code, 'invalid_token', name);
    assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
    assert.ok(!res.body.includes(token.slice(0, 20)), 'the token is never echoed');
  };

  /** Signs header+payload with a fresh ES256 key of the attacker's. */
  const attackerSign = (header: Record<string, unknown>, payload: Record<string, unknown>): string => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };

  it('accepts the genuine token (the control)', async () => {
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode, 200);
  });

  it('alg none', async () => {
    const { header, payload } = parts(t.access_token);
    await refused(`${b64({ ...header, alg: 'none' })}.${b64(payload)}.`, 'alg none, empty signature');
    await refused(`${b64({ ...header, alg: 'none' })}.${b64(payload)}.AAAA`, 'alg none');
  });

  it('HS256 signed with the public key as the secret (algorithm confusion)', async () => {
    const { header, payload } = parts(t.access_token);
    const jwks = json(await h.app.inject({ url: '/.well-known/jwks.json' }));
    const secret = JSON.stringify((jwks.keys as unknown[])[0]);
    const input = `${b64({ ...header, alg: 'HS256' })}.${b64(payload)}`;
    await refused(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`, 'HS256');
  });

  it('signed by another key, with our kid', async () => {
    const { header, payload } = parts(t.access_token);
    await refused(attackerSign(header, payload), 'wrong key');
  });

  it('an embedded jwk / jku / x5u header is never followed', async () => {
    const { header, payload } = parts(t.access_token);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    for (const extra of [{ jwk }, { jku: 'http://127.0.0.1:1/jwks.json' }, { x5u: 'http://127.0.0.1:1/cert' }, { kid: 'attacker', jwk }]) {
      const input = `${b64({ ...header, ...extra })}.${b64(payload)}`;
      const token = `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      await refused(token, JSON.stringify(Object.keys(extra)));
    }
  });

  it('tampered payload (another sub), tampered signature, swapped segments', async () => {
    const { header, payload, sig } = parts(t.access_token);
    await refused(`${b64(header)}.${b64({ ...payload, sub: 'someone-else' })}.${sig}`, 'tampered sub');
    await refused(`${b64(header)}.${b64({ ...payload, exp: payload.exp as number + 3600 })}.${sig}`, 'tampered exp');
    const flipped = sig.slice(0, -2) + (sig.endsWith('AA') ? 'BB' : 'AA');
    await refused(`${b64(header)}.${b64(payload)}.${flipped}`, 'tampered signature');
    await refused(`${t.access_token}x`, 'trailing garbage');
    await refused(`${t.access_token}.extra`, 'four segments');
  });

  it('wrong typ, missing kid, unknown kid, crit header', async () => {
    const { header, payload } = parts(t.access_token);
    // re-signing is impossible without our key, so these are rejected before or at the signature
    await refused(`${b64({ ...header, typ: 'JWT' })}.${b64(payload)}.${parts(t.access_token).sig}`, 'typ JWT');
    await refused(`${b64({ alg: header.alg, typ: header.typ })}.${b64(payload)}.${parts(t.access_token).sig}`, 'no kid');
    await refused(`${b64({ ...header, kid: 'nope' })}.${b64(payload)}.${parts(t.access_token).sig}`, 'unknown kid');
    await refused(`${b64({ ...header, crit: ['exp'] })}.${b64(payload)}.${parts(t.access_token).sig}`, 'crit');
  });

  it('the refresh token, garbage and empty values used as bearer', async () => {
    await refused(t.refresh_token, 'refresh token as bearer');
    for (const garbage of ['garbage', 'a.b.c', '...', 'eyJ.eyJ.eyJ', 'x'.repeat(5000), `${'a'.repeat(100)}.${'b'.repeat(100)}.${'c'.repeat(100)}`]) {
      await refused(garbage, `garbage ${garbage.slice(0, 12)}`);
    }
    for (const header of ['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer', t.access_token]) {
      const res = await h.app.inject({ url: '/v1/me', headers: { authorization: header } });
      assert.equal(res.statusCode, 401, header.slice(0, 20));
      assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
    }
    const none = await h.app.inject({ url: '/v1/me' });
    assert.equal(none.statusCode, 401);
  });

  // regression: header and payload once went to the signature check as latin1
  it('a payload with a character swapped for a non-ASCII look-alike (same latin1 byte) is refused', () => {
    const [head, payload, sig] = t.access_token.split('.') as [string, string, string];
    // U+0100 + the char code: latin1 folds it back onto the original byte
    const twin = String.fromCharCode(0x100 + payload.charCodeAt(4));
    const forged = `${head}.${payload.slice(0, 4)}${twin}${payload.slice(5)}.${sig}`;
    assert.throws(() => h.opened.latch.authenticate(forged), { code: 'invalid_token' });
    const junk = `${head}.${payload}\u00ff.${sig}`;
    assert.throws(() => h.opened.latch.authenticate(junk), { code: 'invalid_token' });
    assert.doesNotThrow(() => h.opened.latch.authenticate(t.access_token));
  });
});

describe('claims rules (tokens signed by our own key, with bad claims)', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ accessTtl: 60 });
    await registerAndLogin(h.app);
  });
  after(async () => h.close());

  /** Signs arbitrary claims with the server's active key: what a bug elsewhere could produce. */
  const ourSign = (payload: Record<string, unknown>, header: Record<string, unknown> = {}): string => {
    const key = h.opened.latch.keyRing.signingKey();
    const input = `${b64({ alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header })}.${b64(payload)}`;
    return `${input}.${sign(key.digest, Buffer.from(input), { key: key.privateKey, dsaEncoding: key.dsaEncoding }).toString('base64url')}`;
  };
  const now = (): number => Math.floor(Date.now() / 1000);
  const base = (): Record<string, unknown> => ({ iss: h.config.issuer, aud: 'latch', sub: 'u', sid: 's', jti: 'j', client_id: 'latch', iat: now(), exp: now() + 60 });
  const verify = (token: string): unknown => h.opened.latch.authenticate(token);

  it('accepts a well-formed token (the control)', () => {
    assert.doesNotThrow(() => verify(ourSign(base())));
  });

  it('refuses: expired, lifetime over the configured TTL, no exp, wrong iss, wrong aud, wrong typ, future iat, missing sid', () => {
    const cases: [string, Record<string, unknown>, Record<string, unknown>?][] = [
      ['expired beyond the 5 s tolerance', { ...base(), iat: now() - 70, exp: now() - 6 }],
      ['exp - iat longer than the TTL', { ...base(), exp: now() + 3600 }],
      ['no exp', { ...base(), exp: undefined }],
      ['no iat', { ...base(), iat: undefined }],
      ['string exp', { ...base(), exp: String(now() + 60) }],
      ['wrong issuer', { ...base(), iss: 'http://evil.example' }],
      ['wrong audience', { ...base(), aud: 'another-api' }],
      ['iat in the future', { ...base(), iat: now() + 30, exp: now() + 60 }],
      ['missing sid', { ...base(), sid: undefined }],
      ['missing sub', { ...base(), sub: '' }],
      ['typ JWT', base(), { typ: 'JWT' }],
      ['nbf in the future', { ...base(), nbf: now() + 30 }],
    ];
    for (const [name, payload, header] of cases) {
      assert.throws(() => verify(ourSign(payload, header)), { code: 'invalid_token' }, name);
    }
  });

  it('accepts within the 5 s clock tolerance, and an audience array containing ours', () => {
    assert.doesNotThrow(() => verify(ourSign({ ...base(), iat: now() - 62, exp: now() - 2 })));
    assert.doesNotThrow(() => verify(ourSign({ ...base(), aud: ['other', 'latch'] })));
  });
});
