// Signing-key rotation (DESIGN.md point 7). One rotator at a time across nodes (a lease in the
// store). A scheduled rotation publishes the next key verify-only for at least the staleness
// budget plus the JWKS cache lifetime before anyone signs with it, then keeps the old key
// verify-only until every token it signed has expired. An emergency rotation disables the old
// keys at once through the revocation log: every node and verifier refuses their tokens, and
// clients recover silently with their refresh tokens.
import type { RevocationRow, Store } from '../store/port.ts';
import type { Clock } from './clock.ts';
import { createSigningKeyRecord, type KeyRing, type SigningAlg } from './keyring.ts';
import type { Sealer } from './seal.ts';
import { randomId } from './secrets.ts';
import { CLOCK_TOLERANCE_S } from './tokens.ts';
import { LatchError } from './errors.ts';

/** Cache-Control max-age of /.well-known/jwks.json, seconds. */
export const JWKS_MAX_AGE_S = 60;
const LEASE = 'key-rotation';
const LEASE_MS = 30_000;

export interface RotationSettings {
  alg: SigningAlg;
  /** seconds between scheduled rotations */
  period: number;
  /** seconds */
  stalenessBudget: number;
  /** seconds */
  accessTtl: number;
}

export interface RotationResult {
  kid: string;
  /** ms: when the new key signs its first token */
  activeFrom: number;
  disabled: string[];
  revocations: RevocationRow[];
  /** a scheduled rotation was already pending: nothing changed */
  pending?: boolean;
}

export class KeyRotation {
  private readonly holder = randomId();

  constructor(
    private readonly store: Store,
    private readonly keyRing: KeyRing,
    private readonly sealer: Sealer,
    private readonly clock: Clock,
    private readonly settings: RotationSettings,
  ) {}

  /** How long a next key is published before it signs: no verifier meets an unseen kid. */
  get leadMs(): number {
    return (this.settings.stalenessBudget + JWKS_MAX_AGE_S) * 1000;
  }

  /** When every token a key that stopped signing at `retiredAt` could have signed has expired. */
  private retiredKeyExpiry(retiredAt: number): number {
    return retiredAt + (this.settings.accessTtl + CLOCK_TOLERANCE_S) * 1000 + 1000;
  }

  private async withLease<T>(fn: () => Promise<T>): Promise<T | null> {
    if (!(await this.store.tryLease(LEASE, this.holder, LEASE_MS, this.clock.now()))) return null;
    try {
      return await fn();
    } finally {
      await this.store.releaseLease(LEASE, this.holder);
    }
  }

  /**
   * The periodic step every node runs: reload the ring (other nodes' changes), and under the
   * lease schedule the next key, promote it when its time has come, drop expired old keys.
   */
  async tick(): Promise<void> {
    await this.keyRing.load();
    const changed = await this.withLease(async () => {
      const now = this.clock.now();
      let dirty = false;
      const active = this.keyRing.activeKey();
      const next = this.keyRing.nextKey();
      if (next && next.activatedAt !== null && next.activatedAt <= now) {
        dirty = (await this.store.activateSigningKey(next.kid, now)) || dirty;
      } else if (!next && active && (active.activatedAt ?? active.createdAt) + this.settings.period * 1000 - this.leadMs <= now) {
        await this.store.insertSigningKey({ ...createSigningKeyRecord(this.settings.alg, this.sealer, now, 'next'), activatedAt: now + this.leadMs });
        dirty = true;
      }
      for (const key of this.keyRing.list()) {
        if (key.state === 'verify' && key.retiredAt !== null && this.retiredKeyExpiry(key.retiredAt) <= now) {
          await this.store.deleteSigningKey(key.kid);
          dirty = true;
        }
      }
      return dirty;
    });
    if (changed) await this.keyRing.load();
  }

  /**
   * An operator's rotation. Scheduled (default): a next key, signing after the lead time, the
   * old one kept verify-only. Emergency: a new key signs at once and every other key is
   * disabled through the log; revokeSessions also ends every session.
   */
  async rotate(options: { emergency: boolean; revokeSessions: boolean; actor: string | null }): Promise<RotationResult> {
    const result = await this.withLease(async () => {
      await this.keyRing.load();
      const now = this.clock.now();
      const record = createSigningKeyRecord(this.settings.alg, this.sealer, now, 'next');
      if (!options.emergency) {
        const pending = this.keyRing.nextKey();
        if (pending) return { kid: pending.kid, activeFrom: pending.activatedAt ?? now, disabled: [], revocations: [], pending: true };
        await this.store.insertSigningKey({ ...record, activatedAt: now + this.leadMs });
        return { kid: record.kid, activeFrom: now + this.leadMs, disabled: [], revocations: [] };
      }
      await this.store.insertSigningKey({ ...record, activatedAt: now });
      await this.store.activateSigningKey(record.kid, now);
      const disabled = this.keyRing.list().filter((k) => k.state !== 'disabled' && k.kid !== record.kid).map((k) => k.kid);
      const revocations = await this.store.disableSigningKeys(disabled, now, options.revokeSessions, {
        type: 'key.rotated',
        at: now,
        actor: options.actor,
        subject: record.kid,
        ip: null,
        userAgent: null,
        detail: { emergency: true, disabled, revoke_sessions: options.revokeSessions },
      });
      return { kid: record.kid, activeFrom: now, disabled, revocations };
    });
    if (!result) throw new LatchError('rotation_in_progress', { retryAfter: 1 });
    if (!options.emergency && !result.pending) {
      await this.store.appendAudit({ type: 'key.rotated', at: this.clock.now(), actor: options.actor, subject: result.kid, ip: null, userAgent: null, detail: { emergency: false, active_from: new Date(result.activeFrom).toISOString() } });
    }
    await this.keyRing.load();
    return result;
  }
}
