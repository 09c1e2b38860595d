// Private keys at rest: AES-256-GCM under a subkey of the master key, bound to the key id.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { deriveKey } from './secrets.ts';

export class Sealer {
  private readonly key: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new TypeError('the master key must be 32 bytes');
    this.key = deriveKey(masterKey, 'signing-keys');
  }

  /** iv (12) ‖ tag (16) ‖ ciphertext */
  seal(plaintext: Buffer, aad: string): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]);
  }

  /** Returns null when the box was sealed under another key or was altered. */
  open(box: Buffer, aad: string): Buffer | null {
    if (box.length < 29) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, box.subarray(0, 12));
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(box.subarray(12, 28));
      return Buffer.concat([decipher.update(box.subarray(28)), decipher.final()]);
    } catch {
      return null;
    }
  }
}
