// The issuer's public keys, imported once into node:crypto KeyObjects. A key is found by kid
// only; jku, x5u, jwk and x5c headers are never followed. A kid once disabled stays out.
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

export type VerifyAlg = 'ES256' | 'EdDSA' | 'RS256';

export interface PublicKey {
  kid: string;
  alg: VerifyAlg;
  key: KeyObject;
  /** node:crypto digest for crypto.verify (null for EdDSA) */
  digest: string | null;
  /** JOSE ECDSA signatures are raw r‖s */
  dsaEncoding: 'ieee-p1363' | undefined;
}

/** Which JWKs each algorithm accepts: the key type decides, not the token. */
function importable(jwk: Record<string, unknown>, alg: VerifyAlg): boolean {
  switch (alg) {
    case 'ES256':
      return jwk.kty === 'EC' && jwk.crv === 'P-256';
    case 'EdDSA':
      return jwk.kty === 'OKP' && jwk.crv === 'Ed25519';
    case 'RS256':
      return jwk.kty === 'RSA';
  }
}

const ALGS: readonly VerifyAlg[] = ['ES256', 'EdDSA', 'RS256'];
const isAlg = (value: unknown): value is VerifyAlg => typeof value === 'string' && (ALGS as readonly string[]).includes(value);

/** RSA keys shorter than this are refused (RFC 7518 §3.3). */
const MIN_RSA_BITS = 2048;

export interface ImportResult {
  keys: Map<string, PublicKey>;
  /** entries skipped: unusable, not for signatures, or an algorithm we do not verify */
  skipped: number;
}

/**
 * Imports a JWK Set (RFC 7517). Only signing keys with a kid and an alg we verify are kept;
 * a bad entry is skipped, never fatal, so one odd key cannot take every other one down.
 */
export function importKeySet(body: unknown, disabled: ReadonlySet<string>): ImportResult {
  const keys = new Map<string, PublicKey>();
  let skipped = 0;
  const list = body !== null && typeof body === 'object' && Array.isArray((body as { keys?: unknown }).keys) ? ((body as { keys: unknown[] }).keys as unknown[]) : null;
  if (!list) throw new TypeError('the JWKS document has no keys array');
  for (const entry of list) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      skipped += 1;
      continue;
    }
    const jwk = entry as Record<string, unknown>;
    const { kid, alg } = jwk;
    if (typeof kid !== 'string' || kid.length === 0 || !isAlg(alg) || (jwk.use !== undefined && jwk.use !== 'sig') || !importable(jwk, alg) || disabled.has(kid) || keys.has(kid)) {
      skipped += 1;
      continue;
    }
    try {
      // a private key published by mistake is imported as its public half only
      const { d: _private, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicPart } = jwk;
      const key = createPublicKey({ key: publicPart as JsonWebKey, format: 'jwk' });
      if (alg === 'RS256' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
        skipped += 1;
        continue;
      }
      keys.set(kid, {
        kid,
        alg,
        key,
        digest: alg === 'EdDSA' ? null : 'sha256',
        dsaEncoding: alg === 'ES256' ? 'ieee-p1363' : undefined,
      });
    } catch {
      skipped += 1;
    }
  }
  return { keys, skipped };
}
