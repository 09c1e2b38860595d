// Access tokens (RFC 9068 JWT profile): issued with the key ring's active key, verified with
// node:crypto on keys imported once. The algorithm comes from the key ring, never from the token.
import { sign, verify } from 'node:crypto';
import type { Clock } from './clock.ts';
import { LatchError } from './errors.ts';
import type { KeyRing, VerificationKey } from './keyring.ts';
import { randomId } from './secrets.ts';

/** Clock tolerance for exp, iat and nbf, seconds. */
export const CLOCK_TOLERANCE_S = 5;
/** A token longer than this is not one of ours. */
export const MAX_TOKEN_LENGTH = 4096;
/** The first-party client: Latch's own login endpoints and web UI. */
export const FIRST_PARTY_CLIENT_ID = 'latch';

export interface AccessClaims {
  iss: string;
  /** opaque user id */
  sub: string;
  aud: string;
  client_id: string;
  iat: number;
  exp: number;
  jti: string;
  /** session id */
  sid: string;
}

export interface VerifiedToken {
  claims: AccessClaims;
  kid: string;
}

export interface AccessTokenOptions {
  issuer: string;
  audience: string;
  /** seconds */
  ttl: number;
  clock: Clock;
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const HEADER_CACHE_MAX = 32;
const TYPES = new Set(['at+jwt', 'application/at+jwt']);

const invalid = (reason: string): LatchError => new LatchError('invalid_token', { cause: reason });

const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export class AccessTokens {
  /** header segment → key, so repeated headers skip JSON parsing and lookups */
  private readonly headerCache = new Map<string, VerificationKey>();

  constructor(
    private readonly keyRing: KeyRing,
    private readonly options: AccessTokenOptions,
  ) {
    keyRing.onChange(() => this.headerCache.clear());
  }

  get ttl(): number {
    return this.options.ttl;
  }

  /** Signs a token; `iat` (seconds) pins the issue time when the caller already promised an exp. */
  issue(subject: { sub: string; sid: string; clientId?: string; iat?: number }): { token: string; claims: AccessClaims } {
    const key = this.keyRing.signingKey();
    const iat = subject.iat ?? Math.floor(this.options.clock.now() / 1000);
    const claims: AccessClaims = {
      iss: this.options.issuer,
      sub: subject.sub,
      aud: this.options.audience,
      client_id: subject.clientId ?? FIRST_PARTY_CLIENT_ID,
      iat,
      exp: iat + this.options.ttl,
      jti: randomId(),
      sid: subject.sid,
    };
    const input = `${b64json({ alg: key.alg, typ: 'at+jwt', kid: key.kid })}.${b64json(claims)}`;
    const signature = sign(key.digest, Buffer.from(input), { key: key.privateKey, dsaEncoding: key.dsaEncoding });
    return { token: `${input}.${signature.toString('base64url')}`, claims };
  }

  /** Verifies signature and claims. Throws LatchError('invalid_token') with the reason as private cause. */
  verify(token: string): VerifiedToken {
    if (token.length > MAX_TOKEN_LENGTH || !TOKEN_SHAPE.test(token)) throw invalid('not a compact JWS');
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    const headerSegment = token.slice(0, dot1);
    const key = this.keyFor(headerSegment);
    const signature = Buffer.from(token.slice(dot2 + 1), 'base64url');
    const ok = verify(key.digest, Buffer.from(token.slice(0, dot2)), { key: key.publicKey, dsaEncoding: key.dsaEncoding }, signature);
    if (!ok) throw invalid('bad signature');
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString('utf8'));
    } catch {
      throw invalid('payload is not JSON');
    }
    return { claims: this.checkClaims(claims), kid: key.kid };
  }

  private keyFor(headerSegment: string): VerificationKey {
    const cached = this.headerCache.get(headerSegment);
    if (cached) return cached;
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(headerSegment, 'base64url').toString('utf8'));
    } catch {
      throw invalid('header is not JSON');
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw invalid('header is not an object');
    const h = header as Record<string, unknown>;
    if (typeof h.alg !== 'string' || !this.keyRing.allowedAlgs().has(h.alg)) throw invalid('algorithm not allowed');
    if (typeof h.typ !== 'string' || !TYPES.has(h.typ.toLowerCase())) throw invalid('typ is not at+jwt');
    if (h.crit !== undefined) throw invalid('unsupported crit header');
    if (typeof h.kid !== 'string') throw invalid('no kid');
    const key = this.keyRing.verificationKey(h.kid);
    if (!key) throw invalid('unknown kid');
    if (key.alg !== h.alg) throw invalid('alg does not match the key');
    if (this.headerCache.size < HEADER_CACHE_MAX) this.headerCache.set(headerSegment, key);
    return key;
  }

  private checkClaims(value: unknown): AccessClaims {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid('payload is not an object');
    const c = value as Record<string, unknown>;
    const now = Math.floor(this.options.clock.now() / 1000);
    if (c.iss !== this.options.issuer) throw invalid('wrong issuer');
    const aud = c.aud;
    if (!(aud === this.options.audience || (Array.isArray(aud) && aud.includes(this.options.audience)))) throw invalid('wrong audience');
    if (!Number.isSafeInteger(c.exp) || !Number.isSafeInteger(c.iat)) throw invalid('exp and iat are required');
    const exp = c.exp as number;
    const iat = c.iat as number;
    if (exp - iat > this.options.ttl || exp <= iat) throw invalid('lifetime longer than allowed');
    if (now >= exp + CLOCK_TOLERANCE_S) throw invalid('expired');
    if (iat > now + CLOCK_TOLERANCE_S) throw invalid('issued in the future');
    if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf > now + CLOCK_TOLERANCE_S)) throw invalid('not yet valid');
    for (const name of ['sub', 'sid', 'jti', 'client_id'] as const) {
      if (typeof c[name] !== 'string' || (c[name] as string).length === 0) throw invalid(`${name} is required`);
    }
    return { iss: c.iss as string, sub: c.sub as string, aud: this.options.audience, client_id: c.client_id as string, iat, exp, jti: c.jti as string, sid: c.sid as string };
  }
}
