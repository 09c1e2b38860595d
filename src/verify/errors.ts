// The verifier's one error type. Its `code` comes from a closed union: switch on it. Messages
// are for people and never contain the token.

export type VerifyErrorCode =
  /** no bearer token in the request (adapters only) */
  | 'token_missing'
  /** not a compact JWS, header or payload not JSON, wrong typ, a crit header, no kid */
  | 'token_malformed'
  /** the header's alg is not one of the key set's */
  | 'algorithm_not_allowed'
  /** the kid is not in the issuer's key set, even after a refetch */
  | 'unknown_key'
  | 'signature_invalid'
  /** iss, aud, a required claim, or a lifetime longer than the issuer allows */
  | 'claim_invalid'
  | 'token_expired'
  /** iat in the future, or nbf not reached (beyond the clock tolerance) */
  | 'token_not_yet_valid'
  /** its session was revoked: logout, session revoke, lock, password change, reuse */
  | 'token_revoked'
  /** its signing key was disabled (emergency rotation); never accepted again */
  | 'key_disabled'
  /** the revocation state was not confirmed within the staleness budget: refused, fail closed */
  | 'revocation_state_stale'
  /** close() was called */
  | 'verifier_closed'
  /** createVerifier could not reach the issuer, or its metadata, keys or feed are unusable */
  | 'issuer_unavailable';

const STALE: ReadonlySet<VerifyErrorCode> = new Set(['revocation_state_stale', 'verifier_closed', 'issuer_unavailable']);

/** A refused token (401) or a verifier that cannot decide right now (503, retry). */
export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  /** the HTTP status an API should answer with */
  readonly status: 401 | 503;
  /** which claim failed, for claim_invalid */
  readonly claim: string | undefined;

  constructor(code: VerifyErrorCode, message: string, options: { claim?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VerifyError';
    this.code = code;
    this.status = STALE.has(code) ? 503 : 401;
    this.claim = options.claim;
  }

  /** RFC 6750 §3: the WWW-Authenticate value for a 401 (no error code when no token was sent). */
  get challenge(): string {
    return this.code === 'token_missing' ? 'Bearer' : 'Bearer error="invalid_token"';
  }
}

export function isVerifyError(value: unknown): value is VerifyError {
  return value instanceof VerifyError;
}
