// Account protection and emergency controls: what a user or an operator does when a token
// was stolen. Lock for a period, reset or change a password, delete a user, end sessions,
// rotate keys, read the audit log. Every change that ends sessions writes the revocation log
// in the same transaction and is applied to this node's memory before the answer leaves.
import type { AuditEvent, AuditInput, AuditType, RevocationRow, SessionRecord, Store, UserRecord } from '../store/port.ts';
import type { Clock } from './clock.ts';
import { LatchError } from './errors.ts';
import type { PasswordHasher } from './passwords.ts';
import type { RevocationSync } from './revocation.ts';
import type { KeyRotation, RotationResult } from './rotation.ts';
import { usernameKey, validatePassword } from './username.ts';
import type { LoginThrottle } from './throttle.ts';

export interface AdminContext {
  ip: string | null;
  userAgent: string | null;
}

export interface AdministrationDeps {
  store: Store;
  clock: Clock;
  passwords: PasswordHasher;
  revocations: RevocationSync;
  rotation: KeyRotation;
  throttle: LoginThrottle;
  /** seconds a lock lasts when no end is given */
  lockDuration: number;
  audit: (type: AuditType, ctx: AdminContext | null, fields: Partial<Pick<AuditInput, 'actor' | 'subject' | 'detail'>>) => AuditInput;
}

/** The longest lock: a year. Longer is a deletion. */
const MAX_LOCK_MS = 366 * 86_400_000;

export class Administration {
  constructor(private readonly deps: AdministrationDeps) {}

  private applied(rows: RevocationRow[] | null): RevocationRow[] {
    if (rows) this.deps.revocations.applyLocal(rows);
    return rows ?? [];
  }

  /** The admin role is read from the store on every call, never from a token claim. */
  async requireAdmin(userId: string): Promise<UserRecord> {
    const user = await this.deps.store.findUserById(userId);
    if (!user || !user.isAdmin) throw new LatchError('forbidden');
    return user;
  }

  async userNamed(username: string): Promise<UserRecord> {
    const user = await this.deps.store.findUserByKey(usernameKey(username));
    if (!user) throw new LatchError('not_found', { detail: 'No such user' });
    return user;
  }

  /**
   * Blocks login and refresh until `until` (default: now + LATCH_LOCK_DURATION) and revokes
   * every live session, in one transaction.
   */
  async lockUser(username: string, options: { seconds?: number; until?: number; reason?: string }, actor: string | null, ctx: AdminContext | null): Promise<{ username: string; lockedUntil: number }> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const lockedUntil = options.until ?? now + (options.seconds ?? this.deps.lockDuration) * 1000;
    if (!Number.isFinite(lockedUntil) || lockedUntil <= now) throw new LatchError('invalid_request', { detail: 'the lock must end in the future' });
    if (lockedUntil - now > MAX_LOCK_MS) throw new LatchError('invalid_request', { detail: 'a lock lasts at most 366 days; delete the user instead' });
    const user = await this.userNamed(username);
    const rows = await store.lockUser({
      userId: user.id,
      lockedUntil,
      now,
      audit: this.deps.audit('user.locked', ctx, { actor, subject: user.id, detail: { locked_until: new Date(lockedUntil).toISOString(), ...(options.reason ? { reason: options.reason.slice(0, 200) } : {}) } }),
    });
    if (rows === null) throw new LatchError('not_found', { detail: 'No such user' });
    this.applied(rows);
    return { username: user.username, lockedUntil };
  }

  async unlockUser(username: string, actor: string | null, ctx: AdminContext | null): Promise<void> {
    const user = await this.userNamed(username);
    await this.deps.store.unlockUser(user.id, this.deps.audit('user.unlocked', ctx, { actor, subject: user.id }));
  }

  /** An operator's reset: the way back after an account takeover, so every session ends. */
  async resetPassword(username: string, newPassword: string, actor: string | null, ctx: AdminContext | null): Promise<number> {
    const password = validatePassword(newPassword, 'new_password');
    const user = await this.userNamed(username);
    const passwordHash = await this.deps.passwords.hash(password);
    const rows = await this.deps.store.setPassword({ userId: user.id, passwordHash, now: this.deps.clock.now(), audit: this.deps.audit('password.reset', ctx, { actor, subject: user.id }) });
    if (rows === null) throw new LatchError('not_found', { detail: 'No such user' });
    return this.applied(rows).length;
  }

  /** A user's own change: the current password is checked, every other session ends, this one stays. */
  async changePassword(userId: string, sessionId: string, currentPassword: string, newPassword: string, ctx: AdminContext): Promise<number> {
    const password = validatePassword(newPassword, 'new_password');
    const user = await this.deps.store.findUserById(userId);
    if (!user) throw new LatchError('invalid_token', { cause: 'user gone' });
    const now = this.deps.clock.now();
    const verdict = await this.deps.throttle.checkPasswordChange(userId, now);
    if (verdict.blocked) throw new LatchError('too_many_attempts', { retryAfter: verdict.retryAfter, detail: `Too many wrong passwords; try again in ${verdict.retryAfter} s` });
    if (!(await this.deps.passwords.verify(user.passwordHash, currentPassword))) {
      await this.deps.throttle.recordPasswordChangeFailure(userId, now);
      throw new LatchError('invalid_credentials', { detail: 'The current password is wrong' });
    }
    await this.deps.throttle.clearPasswordChange(userId);
    const passwordHash = await this.deps.passwords.hash(password);
    const rows = await this.deps.store.setPassword({
      userId,
      passwordHash,
      exceptSessionId: sessionId,
      now: this.deps.clock.now(),
      audit: this.deps.audit('password.changed', ctx, { actor: userId, subject: userId }),
    });
    return this.applied(rows).length;
  }

  async deleteUser(username: string, actor: string | null, ctx: AdminContext | null): Promise<number> {
    const user = await this.userNamed(username);
    const rows = await this.deps.store.deleteUser(user.id, this.deps.clock.now(), this.deps.audit('user.deleted', ctx, { actor, subject: user.id, detail: { username: user.username } }));
    if (rows === null) throw new LatchError('not_found', { detail: 'No such user' });
    return this.applied(rows).length;
  }

  async sessionsOf(username: string, idleMs: number): Promise<{ user: UserRecord; sessions: SessionRecord[] }> {
    const user = await this.userNamed(username);
    return { user, sessions: await this.deps.store.listLiveSessions(user.id, this.deps.clock.now(), idleMs) };
  }

  async revokeSession(sessionId: string, actor: string | null, ctx: AdminContext | null): Promise<void> {
    const session = await this.deps.store.getSession(sessionId);
    const rows = await this.deps.store.revokeSession({
      sessionId,
      now: this.deps.clock.now(),
      audit: this.deps.audit('session.revoked', ctx, { actor, subject: session?.userId ?? null, detail: { session_id: sessionId, by: 'operator' } }),
    });
    if (rows.length === 0) throw new LatchError('not_found', { detail: 'No such live session' });
    this.applied(rows);
  }

  async rotateKeys(options: { emergency: boolean; revokeSessions: boolean }, actor: string | null): Promise<RotationResult> {
    const result = await this.deps.rotation.rotate({ ...options, actor });
    this.applied(result.revocations);
    return result;
  }

  async audit(afterId: number, limit: number): Promise<AuditEvent[]> {
    return this.deps.store.listAudit(afterId, limit);
  }
}
