// Refresh tokens: 256-bit opaque secrets stored only as SHA-256. The successor of a token is
// HMAC(server secret, token), so a retry inside the grace window gets the same successor
// again without any plaintext ever being stored (DESIGN.md point 2).
import { hmacSha256, randomSecret, sha256 } from './secrets.ts';

const SHAPE = /^[A-Za-z0-9_-]{43}$/;

export class RefreshTokens {
  constructor(private readonly successorKey: Buffer) {}

  /** A fresh token for a new session. */
  create(): { token: string; hash: Buffer } {
    const token = randomSecret();
    return { token, hash: sha256(token) };
  }

  /** Whether the string can be one of ours at all (cheap rejection of garbage). */
  isWellFormed(token: string): boolean {
    return SHAPE.test(token);
  }

  hash(token: string): Buffer {
    return sha256(token);
  }

  successor(token: string): { token: string; hash: Buffer } {
    const next = hmacSha256(this.successorKey, token).toString('base64url');
    return { token: next, hash: sha256(next) };
  }
}
