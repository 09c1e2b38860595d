// The signature and claim rules of a Latch access token (RFC 9068 at+jwt), the same as the
// server's: node:crypto on keys imported once, the algorithm taken from the key, never from
// the token alone.
import { verify as cryptoVerify } from 'node:crypto';
import { VerifyError } from './errors.ts';
import type { PublicKey } from './keys.ts';

/** What a verified Latch access token says. Never personal data: `sub` is an opaque user id. */
export interface LatchClaims {
  readonly iss: string;
  /** opaque user id */
  readonly sub: string;
  /** the audience this verifier accepts (one of the token's, when it lists several) */
  readonly aud: string;
  readonly client_id: string;
  /** NumericDate, seconds */
  readonly iat: number;
  /** NumericDate, seconds */
  readonly exp: number;
  readonly jti: string;
  /** session id: what logout revokes */
  readonly sid: string;
}

export interface VerifiedToken {
  claims: LatchClaims;
  kid: string;
}

export interface ClaimRules {
  issuer: string;
  audience: string;
  /** the longest exp − iat the issuer hands out, seconds */
  maxLifetimeS: number;
}

/** Clock tolerance for exp, iat and nbf, seconds (the server's too). */
export const CLOCK_TOLERANCE_S = 5;
/** A token longer than this is not one of Latch's. */
export const MAX_TOKEN_LENGTH = 4096;

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const TYPES = new Set(['at+jwt', 'application/at+jwt']);
/** The algorithms Latch signs with; a key set can only narrow this. */
const SUPPORTED_ALGS: ReadonlySet<string> = new Set(['ES256', 'EdDSA', 'RS256']);
const HEADER_CACHE_MAX = 32;
const REQUIRED_STRINGS = ['sub', 'sid', 'jti', 'client_id'] as const;

const malformed = (message: string): VerifyError => new VerifyError('token_malformed', message);
const claimInvalid = (claim: string, message: string): VerifyError => new VerifyError('claim_invalid', message, { claim });

/** What the checker needs from the key set. */
export interface KeyView {
  get(kid: string): PublicKey | undefined;
}

/** Thrown (as a value, not an error) when the kid is not in the key set: the caller may refetch and retry. */
export class UnknownKid {
  constructor(readonly kid: string) {}
}

function decodeJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

export class TokenChecker {
  /** header segment → key: repeated headers skip JSON parsing and lookups */
  private readonly headers = new Map<string, PublicKey>();
  /** the last header seen with its dot, and its key: nearly every token shares it, and a prefix compare is cheaper than hashing a slice */
  private lastHeader = '';
  private lastKey: PublicKey | null = null;
  /** three bytes per character: the UTF-8 of any token short enough to be checked fits */
  private readonly inputBuffer = Buffer.allocUnsafe(3 * MAX_TOKEN_LENGTH);
  private readonly signatureBuffer = Buffer.allocUnsafe(MAX_TOKEN_LENGTH);
  private readonly payloadBuffer = Buffer.allocUnsafe(MAX_TOKEN_LENGTH);

  constructor(
    private readonly rules: ClaimRules,
    private readonly keys: () => KeyView,
  ) {}

  /** The key set changed: cached header lookups may point at keys that are gone. */
  keysChanged(): void {
    this.headers.clear();
    this.lastHeader = '';
    this.lastKey = null;
  }

  /** Verifies signature and claims at `nowMs`. Throws VerifyError, or UnknownKid when a refetch might help. */
  check(token: string, nowMs: number): VerifiedToken {
    if (token.length > MAX_TOKEN_LENGTH) throw malformed('the token is too long');
    const dot1 = token.indexOf('.');
    const dot2 = dot1 < 1 ? -1 : token.indexOf('.', dot1 + 1);
    if (dot2 < dot1 + 2 || dot2 === token.length - 1 || token.indexOf('.', dot2 + 1) !== -1) throw malformed('not a compact JWS');
    const signatureSegment = token.slice(dot2 + 1);
    // header and payload need no character check: the signature covers their exact UTF-8 bytes,
    // and the issuer signs only ASCII base64url, so no other string has those bytes (never
    // latin1 here: it folds U+0141 onto 'A', which a base64 decoder would then skip). The
    // signature segment is checked, since base64 decoding would skip junk in it.
    if (!SEGMENT.test(signatureSegment)) throw malformed('the signature is not base64url');
    let key: PublicKey;
    if (this.lastKey !== null && token.startsWith(this.lastHeader)) {
      key = this.lastKey;
    } else {
      key = this.keyFor(token.slice(0, dot1));
      this.lastHeader = token.slice(0, dot1 + 1);
      this.lastKey = key;
    }
    // written into buffers kept for the purpose (crypto.verify is synchronous, so nothing else
    // can use them meanwhile): two allocations fewer per token on the hot path
    const input = this.inputBuffer.subarray(0, this.inputBuffer.write(token.slice(0, dot2), 'utf8'));
    const signature = this.signatureBuffer.subarray(0, this.signatureBuffer.write(signatureSegment, 'base64url'));
    if (!cryptoVerify(key.digest, input, { key: key.key, dsaEncoding: key.dsaEncoding }, signature)) {
      throw new VerifyError('signature_invalid', 'the signature does not verify');
    }
    const payload = this.decodePayload(token.slice(dot1 + 1, dot2));
    if (!isObject(payload)) throw malformed('the payload is not a JSON object');
    return { claims: this.checkClaims(payload, nowMs), kid: key.kid };
  }

  /** base64url → JSON through a kept buffer: one allocation (the text) instead of two. */
  private decodePayload(segment: string): unknown {
    try {
      const length = this.payloadBuffer.write(segment, 'base64url');
      return JSON.parse(this.payloadBuffer.toString('utf8', 0, length));
    } catch {
      return undefined;
    }
  }

  private keyFor(segment: string): PublicKey {
    const cached = this.headers.get(segment);
    if (cached) return cached;
    const header = decodeJson(segment);
    if (!isObject(header)) throw malformed('the header is not a JSON object');
    // none, HS256 and friends are refused before anything else, and never cause a refetch
    if (typeof header.alg !== 'string' || !SUPPORTED_ALGS.has(header.alg)) throw new VerifyError('algorithm_not_allowed', 'the algorithm is not allowed');
    if (typeof header.typ !== 'string' || !TYPES.has(header.typ.toLowerCase())) throw malformed('typ is not at+jwt');
    if (header.crit !== undefined) throw malformed('crit headers are not supported');
    if (typeof header.kid !== 'string' || header.kid.length === 0) throw malformed('the header has no kid');
    const view = this.keys();
    const key = view.get(header.kid);
    // a kid we do not hold yet may be a key the issuer just published: the caller may refetch
    if (!key) throw new UnknownKid(header.kid);
    // the key decides the algorithm (so the allowlist is the key set's): a header cannot choose another
    if (key.alg !== header.alg) throw new VerifyError('algorithm_not_allowed', 'the algorithm does not match the key');
    if (this.headers.size < HEADER_CACHE_MAX) this.headers.set(segment, key);
    return key;
  }

  private checkClaims(c: Record<string, unknown>, nowMs: number): LatchClaims {
    const { issuer, audience, maxLifetimeS } = this.rules;
    const now = Math.floor(nowMs / 1000);
    if (c.iss !== issuer) throw claimInvalid('iss', 'wrong issuer');
    const aud = c.aud;
    if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) throw claimInvalid('aud', 'wrong audience');
    if (!Number.isSafeInteger(c.exp)) throw claimInvalid('exp', 'exp is required');
    if (!Number.isSafeInteger(c.iat)) throw claimInvalid('iat', 'iat is required');
    const exp = c.exp as number;
    const iat = c.iat as number;
    if (exp <= iat || exp - iat > maxLifetimeS) throw claimInvalid('exp', 'the lifetime is longer than the issuer allows');
    if (now >= exp + CLOCK_TOLERANCE_S) throw new VerifyError('token_expired', 'the token has expired');
    if (iat > now + CLOCK_TOLERANCE_S) throw new VerifyError('token_not_yet_valid', 'the token is issued in the future');
    if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf > now + CLOCK_TOLERANCE_S)) throw new VerifyError('token_not_yet_valid', 'the token is not valid yet');
    for (const name of REQUIRED_STRINGS) {
      const value = c[name];
      if (typeof value !== 'string' || value.length === 0) throw claimInvalid(name, `${name} is required`);
    }
    return Object.freeze({
      iss: issuer,
      sub: c.sub as string,
      aud: audience,
      client_id: c.client_id as string,
      iat,
      exp,
      jti: c.jti as string,
      sid: c.sid as string,
    });
  }
}
