// Random identifiers, opaque secrets and their hashes.
import { createHash, createHmac, randomBytes, timingSafeEqual, hkdfSync } from 'node:crypto';

/** 128-bit random identifier (session ids, user ids, jti), base64url. */
export const randomId = (): string => randomBytes(16).toString('base64url');

/** 256-bit random opaque secret, base64url (43 characters). */
export const randomSecret = (): string => randomBytes(32).toString('base64url');

export const sha256 = (value: string | Buffer): Buffer => createHash('sha256').update(value).digest();

export const hmacSha256 = (key: Buffer, value: string): Buffer => createHmac('sha256', key).update(value).digest();

/** Constant-time equality of two byte strings (false when lengths differ). */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A purpose-bound subkey of the master key, so one secret never serves two uses. */
export function deriveKey(master: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `latch/${purpose}`, 32));
}
