// A bounded cache of token strings whose signature and claims were already verified. A token
// is admitted on its second sighting only: caching every token on first sight measurably
// slowed first-seen checks through GC pressure (DESIGN.md), and a token seen once is usually
// never seen again. The cache skips only the signature and claim parsing; expiry, freshness
// and revocation are checked on every call by the caller.
import type { VerifiedToken } from './token.ts';

/** Slots of the "seen once" filter: a power of two, one 32-bit fingerprint each (256 KiB). */
const SEEN_SLOTS = 1 << 16;

export class VerifiedTokenCache {
  private readonly entries = new Map<string, VerifiedToken>();
  /** fingerprints of tokens verified once; a collision only admits a verified token early */
  private readonly seen = new Int32Array(SEEN_SLOTS);
  /**
   * fingerprints of tokens admitted: a token whose fingerprint is not here is not cached, which
   * spares a first-seen token the Map lookup (hashing all of a ~400-character string). A stale
   * or colliding fingerprint only costs a lookup that misses.
   */
  private readonly admitted = new Int32Array(SEEN_SLOTS);

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The token's entry, if cached; `fp` is fingerprint(token), computed once per call by the caller. */
  get(token: string, fp: number): VerifiedToken | undefined {
    return this.admitted[fp & (SEEN_SLOTS - 1)] === fp ? this.entries.get(token) : undefined;
  }

  delete(token: string): void {
    this.entries.delete(token);
  }

  /** Called after a full verification succeeded: remembers the token, or caches it if it was seen before. */
  admit(token: string, fp: number, verified: VerifiedToken): void {
    if (this.maxEntries === 0) return;
    const slot = fp & (SEEN_SLOTS - 1);
    if (this.seen[slot] !== fp) {
      this.seen[slot] = fp;
      return;
    }
    this.seen[slot] = 0;
    if (this.entries.size >= this.maxEntries) {
      // oldest first: insertion order is a cheap stand-in for age, and age is what expiry follows
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(token, verified);
    this.admitted[slot] = fp;
  }

  /** Drops entries past `expS` (seconds) so the cache does not hold dead tokens until evicted. */
  prune(nowS: number, toleranceS: number): void {
    for (const [token, entry] of this.entries) if (entry.claims.exp + toleranceS <= nowS) this.entries.delete(token);
  }

  clear(): void {
    this.entries.clear();
    this.seen.fill(0);
    this.admitted.fill(0);
  }
}

/**
 * FNV-1a over the last 16 characters: the tail of the signature, which is as good as random
 * for tokens someone signed, and costs a handful of operations. Never 0 (0 marks an empty slot).
 */
export function fingerprint(token: string): number {
  let h = 0x811c9dc5;
  for (let i = Math.max(0, token.length - 16); i < token.length; i++) {
    h ^= token.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 1;
}
