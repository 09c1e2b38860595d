// The live part of a revocation log in memory: revoked session ids until their expiry, and
// disabled key ids forever. Checked on every authenticated request with no I/O, by the server
// (through RevocationState) and by latch/verify alike. Pure: no imports, no I/O.

/**
 * Fingerprints of the revoked session ids in an open-addressing table of 32-bit integers. Nearly
 * every lookup is for a session that is not revoked; at a million entries a Map lookup of a
 * fresh string costs ~0.7 µs (a handful of cache misses), this one ~0.1 µs (one). Only a
 * fingerprint hit goes on to the Map, which stays the authority. Dropped ids stay in the table
 * (they only cost a Map lookup that misses) until the next rebuild.
 */
const MIN_SLOTS = 1 << 10;

class SessionFilter {
  private slots = new Int32Array(MIN_SLOTS);
  private mask = MIN_SLOTS - 1;
  /** fingerprints stored, including those of ids dropped since the last rebuild */
  private stored = 0;

  get count(): number {
    return this.stored;
  }

  mightContain(sid: string): boolean {
    const fp = fingerprint(sid);
    const { slots, mask } = this;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const slot = slots[i]!;
      if (slot === fp) return true;
      if (slot === 0) return false;
    }
  }

  add(sid: string): void {
    // at most half full, so a miss ends after a couple of probes
    if ((this.stored + 1) * 2 > this.slots.length) this.grow(this.slots.length * 2);
    if (this.insert(fingerprint(sid))) this.stored += 1;
  }

  /** Starts over from the ids still live (after a prune dropped many, or a clear). */
  rebuild(sids: Iterable<string>, size: number): void {
    let capacity = MIN_SLOTS;
    while (capacity < size * 2) capacity *= 2;
    this.slots = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.stored = 0;
    for (const sid of sids) if (this.insert(fingerprint(sid))) this.stored += 1;
  }

  private insert(fp: number): boolean {
    const { slots, mask } = this;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const slot = slots[i]!;
      if (slot === fp) return false;
      if (slot === 0) {
        slots[i] = fp;
        return true;
      }
    }
  }

  private grow(capacity: number): void {
    const old = this.slots;
    this.slots = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (const fp of old) if (fp !== 0) this.insert(fp);
  }
}

/** FNV-1a over the id's characters; never 0 (0 marks an empty slot). */
function fingerprint(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 1;
}

export class RevocationSet {
  /** session id → expiry in whole seconds (a small integer, so V8 stores it inline) */
  protected readonly sessions = new Map<string, number>();
  private readonly filter = new SessionFilter();
  protected readonly keys = new Set<string>();

  isSessionRevoked(sid: string): boolean {
    return this.filter.mightContain(sid) && this.sessions.has(sid);
  }

  isKeyDisabled(kid: string): boolean {
    return this.keys.has(kid);
  }

  get disabledKeys(): ReadonlySet<string> {
    return this.keys;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Idempotent. `expiresAtS` is a NumericDate; a session entry already past it is not kept. */
  revokeSession(sid: string, expiresAtS: number, nowMs: number): void {
    if (expiresAtS * 1000 <= nowMs) return;
    this.sessions.set(sid, expiresAtS);
    this.filter.add(sid);
  }

  disableKey(kid: string): void {
    this.keys.add(kid);
  }

  /** Session entries plus disabled keys. */
  get size(): number {
    return this.sessions.size + this.keys.size;
  }

  clear(): void {
    this.sessions.clear();
    this.keys.clear();
    this.filter.rebuild([], 0);
  }

  /** Drops session entries whose tokens have all expired; returns how many. */
  prune(nowMs: number): number {
    const nowS = Math.floor(nowMs / 1000);
    let dropped = 0;
    for (const [sid, expiresS] of this.sessions) {
      if (expiresS <= nowS) {
        this.sessions.delete(sid);
        dropped += 1;
      }
    }
    // stale fingerprints cost only a missed Map lookup; rebuild once they outnumber the live ones
    if (this.filter.count > 2 * this.sessions.size + 1024) this.filter.rebuild(this.sessions.keys(), this.sessions.size);
    return dropped;
  }
}
