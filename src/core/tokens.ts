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
  /** ours, or a list that contains ours */
  aud: string | string[];
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

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const REQUIRED_STRINGS = ['sub', 'sid', 'jti', 'client_id'] as const;
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

  /**
   * Verifies signature and claims. Throws LatchError('invalid_token') with the reason as
   * private cause. The hot path of every authenticated request: no I/O, few allocations.
   */
  verify(token: string, nowMs: number = this.options.clock.now()): VerifiedToken {
    if (token.length > MAX_TOKEN_LENGTH) throw invalid('too long');
    const dot1 = token.indexOf('.');
    const dot2 = dot1 < 1 ? -1 : token.indexOf('.', dot1 + 1);
    if (dot2 < dot1 + 2 || dot2 === token.length - 1 || token.indexOf('.', dot2 + 1) !== -1) throw invalid('not a compact JWS');
    const signatureSegment = token.slice(dot2 + 1);
    // header and payload need no character check: the signature covers their exact UTF-8 bytes,
    // and we only ever sign ASCII base64url (so no other string can have the same bytes; never
    // encode as latin1 here, which folds U+0141 onto 'A' and would let a base64 decoder skip it)
    if (!SEGMENT.test(signatureSegment)) throw invalid('signature is not base64url');
    const key = this.keyFor(token.slice(0, dot1));
    const ok = verify(key.digest, Buffer.from(token.slice(0, dot2), 'utf8'), key.verifyOptions, Buffer.from(signatureSegment, 'base64url'));
    if (!ok) throw invalid('bad signature');
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString('utf8'));
    } catch {
      throw invalid('payload is not JSON');
    }
    return { claims: this.checkClaims(claims, Math.floor(nowMs / 1000)), kid: key.kid };
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

  /** Checks the claims in place and returns the parsed object itself (no copy on the hot path). */
  private checkClaims(value: unknown, now: number): AccessClaims {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid('payload is not an object');
    const c = value as Record<string, unknown>;
    if (c.iss !== this.options.issuer) throw invalid('wrong issuer');
    const aud = c.aud;
    if (!(aud === this.options.audience || (Array.isArray(aud) && aud.includes(this.options.audience)))) throw invalid('wrong audience');
    const exp = c.exp;
    const iat = c.iat;
    if (typeof exp !== 'number' || typeof iat !== 'number' || !Number.isSafeInteger(exp) || !Number.isSafeInteger(iat)) throw invalid('exp and iat are required');
    if (exp - iat > this.options.ttl || exp <= iat) throw invalid('lifetime longer than allowed');
    if (now >= exp + CLOCK_TOLERANCE_S) throw invalid('expired');
    if (iat > now + CLOCK_TOLERANCE_S) throw invalid('issued in the future');
    if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf > now + CLOCK_TOLERANCE_S)) throw invalid('not yet valid');
    for (const name of REQUIRED_STRINGS) {
      const v = c[name];
      if (typeof v !== 'string' || v.length === 0) throw invalid(`${name} is required`);
    }
    return value as AccessClaims;
  }
}
