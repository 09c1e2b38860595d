// The embedded store: one SQLite file in WAL mode (better-sqlite3). Every state change is one
// BEGIN IMMEDIATE transaction, which takes the database's write lock and so serialises writers
// across processes (a running server and the CLI on the same data directory).
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { StoreUnavailableError } from '../../core/errors.ts';
import type {
  AuditEvent,
  AuditInput,
  ClientRecord,
  LockUserInput,
  SetPasswordInput,
  ThrottlePolicy,
  ThrottleState,
  CreateSessionResult,
  NewSession,
  NewUser,
  PruneResult,
  RevocationHead,
  RevocationRow,
  RevokeSessionInput,
  RevokeUserSessionsInput,
  RotateInput,
  RotateResult,
  SessionRecord,
  SigningKeyRecord,
  Store,
  UserRecord,
} from '../port.ts';
import { nextThrottleState } from '../port.ts';
import { MIGRATIONS } from './migrations.ts';

type Row = Record<string, unknown>;

const toUser = (r: Row): UserRecord => ({
  id: r.id as string,
  username: r.username as string,
  usernameKey: r.username_key as string,
  passwordHash: r.password_hash as string,
  isAdmin: r.is_admin === 1,
  lockedUntil: (r.locked_until as number | null) ?? null,
  createdAt: r.created_at as number,
});

const toSession = (r: Row): SessionRecord => ({
  id: r.id as string,
  userId: r.user_id as string,
  device: (r.device as string | null) ?? null,
  ip: (r.ip as string | null) ?? null,
  userAgent: (r.user_agent as string | null) ?? null,
  createdAt: r.created_at as number,
  lastSeenAt: r.last_seen_at as number,
  expiresAt: r.expires_at as number,
  accessExpiresAt: r.access_expires_at as number,
  revokedAt: (r.revoked_at as number | null) ?? null,
});

const toKey = (r: Row): SigningKeyRecord => ({
  kid: r.kid as string,
  alg: r.alg as string,
  state: r.state as SigningKeyRecord['state'],
  publicJwk: r.public_jwk as string,
  sealedPrivateKey: r.sealed_private_key as Buffer,
  createdAt: r.created_at as number,
  activatedAt: (r.activated_at as number | null) ?? null,
  retiredAt: (r.retired_at as number | null) ?? null,
});

const toClient = (r: Row): ClientRecord => ({
  id: r.id as string,
  name: r.name as string,
  secretHash: r.secret_hash as Buffer,
  createdAt: r.created_at as number,
});

const toThrottle = (r: Row): ThrottleState => ({
  failures: r.failures as number,
  blockedUntil: r.blocked_until as number,
  expiresAt: r.expires_at as number,
});

const toRevocation = (r: Row): RevocationRow => ({
  seq: r.seq as number,
  kind: r.kind as RevocationRow['kind'],
  target: r.target as string,
  expiresAt: (r.expires_at as number | null) ?? null,
  createdAt: r.created_at as number,
});

export interface SqliteStoreOptions {
  /** file path, or ':memory:' */
  path: string;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;

  constructor(options: SqliteStoreOptions) {
    // created 0600 first: SQLite gives the -wal and -shm files the database file's mode
    if (options.path !== ':memory:' && !existsSync(options.path)) closeSync(openSync(options.path, 'a', 0o600));
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL survives any process crash; only an OS crash or power loss can drop the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, compiled once per SQL text (preparing costs more than running). */
  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs fn in BEGIN IMMEDIATE … COMMIT (rolled back if it throws). */
  private tx<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      // another process held the write lock past busy_timeout: a 503 to retry, not a bug
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new StoreUnavailableError(err);
      throw err;
    }
  }

  async migrate(): Promise<void> {
    this.tx(() => {
      this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      const applied = new Set(this.db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, Date.now());
      }
      this.db.prepare('INSERT OR IGNORE INTO revocation_head (id, log_id, last_seq) VALUES (1, ?, 0)').run(randomBytes(16).toString('base64url'));
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private audit(event: AuditInput | undefined): void {
    if (!event) return;
    this.db
      .prepare('INSERT INTO audit_events (at, type, actor, subject, ip, user_agent, detail) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(event.at, event.type, event.actor, event.subject, event.ip, event.userAgent, event.detail ? JSON.stringify(event.detail) : null);
  }

  async createUser(user: NewUser, audit?: AuditInput): Promise<UserRecord | null> {
    return this.tx(() => {
      const inserted = this.db
        .prepare(
          `INSERT INTO users (id, username, username_key, password_hash, is_admin, created_at)
           VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (username_key) DO NOTHING`,
        )
        .run(user.id, user.username, user.usernameKey, user.passwordHash, user.isAdmin ? 1 : 0, user.createdAt);
      if (inserted.changes === 0) return null;
      this.audit(audit);
      return { ...user, lockedUntil: null };
    });
  }

  async findUserByKey(usernameKey: string): Promise<UserRecord | null> {
    const r = this.stmt('SELECT * FROM users WHERE username_key = ?').get(usernameKey) as Row | undefined;
    return r ? toUser(r) : null;
  }

  async findUserById(id: string): Promise<UserRecord | null> {
    const r = this.stmt('SELECT * FROM users WHERE id = ?').get(id) as Row | undefined;
    return r ? toUser(r) : null;
  }

  async listUsers(): Promise<UserRecord[]> {
    return (this.stmt('SELECT * FROM users ORDER BY username_key').all() as Row[]).map(toUser);
  }

  async createSession(session: NewSession, refreshHash: Buffer, audit?: AuditInput): Promise<CreateSessionResult> {
    return this.tx((): CreateSessionResult => {
      const user = this.stmt('SELECT locked_until FROM users WHERE id = ?').get(session.userId) as Row | undefined;
      if (!user) return { kind: 'no_user' };
      const lockedUntil = user.locked_until as number | null;
      if (lockedUntil !== null && lockedUntil > session.createdAt) return { kind: 'locked', lockedUntil };
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, device, ip, user_agent, created_at, last_seen_at, expires_at, access_expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(session.id, session.userId, session.device, session.ip, session.userAgent, session.createdAt, session.lastSeenAt, session.expiresAt, session.accessExpiresAt);
      this.stmt('INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)').run(refreshHash, session.id, session.createdAt);
      this.audit(audit);
      return { kind: 'created' };
    });
  }

  async rotateRefreshToken(input: RotateInput, reuseAudit: AuditInput): Promise<RotateResult> {
    return this.tx((): RotateResult => {
      const token = this.stmt('SELECT * FROM refresh_tokens WHERE hash = ?').get(input.presentedHash) as Row | undefined;
      if (!token) return { kind: 'invalid' };
      const row = this.db
        .prepare('SELECT s.*, u.locked_until FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?')
        .get(token.session_id) as Row | undefined;
      if (!row) return { kind: 'invalid' };
      const session = toSession(row);
      const lockedUntil = row.locked_until as number | null;
      if (
        session.revokedAt !== null ||
        input.now >= session.expiresAt ||
        input.now >= session.lastSeenAt + input.idleMs ||
        (lockedUntil !== null && lockedUntil > input.now)
      ) {
        return { kind: 'invalid' };
      }
      const usedAt = token.used_at as number | null;
      if (usedAt !== null) {
        const successor = token.successor_hash as Buffer | null;
        const inGrace = input.graceMs > 0 && input.now - usedAt < input.graceMs && successor !== null && successor.equals(input.successorHash);
        if (!inGrace) {
          const revocations = this.revokeSessionRows([session], input.now);
          this.audit(reuseAudit);
          return { kind: 'reused', session: { ...session, revokedAt: input.now }, revocations };
        }
      } else {
        this.stmt('UPDATE refresh_tokens SET used_at = ?, successor_hash = ? WHERE hash = ?').run(input.now, input.successorHash, input.presentedHash);
        this.stmt('INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)').run(input.successorHash, session.id, input.now);
      }
      const accessExpiresAt = Math.max(session.accessExpiresAt, input.accessExpiresAt);
      this.db
        .prepare('UPDATE sessions SET last_seen_at = ?, access_expires_at = ?, ip = COALESCE(?, ip), user_agent = COALESCE(?, user_agent) WHERE id = ?')
        .run(input.now, accessExpiresAt, input.ip, input.userAgent, session.id);
      return {
        kind: 'rotated',
        replay: usedAt !== null,
        session: { ...session, lastSeenAt: input.now, accessExpiresAt, ip: input.ip ?? session.ip, userAgent: input.userAgent ?? session.userAgent },
      };
    });
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    const r = this.stmt('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return r ? toSession(r) : null;
  }

  async findSessionByRefreshHash(hash: Buffer): Promise<SessionRecord | null> {
    const r = this.stmt('SELECT s.* FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = ?').get(hash) as Row | undefined;
    return r ? toSession(r) : null;
  }

  async listLiveSessions(userId: string, now: number, idleMs: number): Promise<SessionRecord[]> {
    return (
      this.db
        .prepare(
          `SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at + ? > ?
           ORDER BY created_at DESC, id`,
        )
        .all(userId, now, idleMs, now) as Row[]
    ).map(toSession);
  }

  /** Marks the sessions revoked and appends one log row each; seqs come from the head row, in commit order. */
  private revokeSessionRows(sessions: SessionRecord[], now: number): RevocationRow[] {
    if (sessions.length === 0) return [];
    const head = this.stmt('UPDATE revocation_head SET last_seq = last_seq + ? WHERE id = 1 RETURNING last_seq').get(sessions.length) as Row;
    let seq = (head.last_seq as number) - sessions.length;
    const markRevoked = this.stmt('UPDATE sessions SET revoked_at = ? WHERE id = ?');
    const append = this.stmt("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (?, 'session', ?, ?, ?)");
    return sessions.map((s) => {
      seq += 1;
      markRevoked.run(now, s.id);
      append.run(seq, s.id, s.accessExpiresAt, now);
      return { seq, kind: 'session', target: s.id, expiresAt: s.accessExpiresAt, createdAt: now };
    });
  }

  async revokeSession(input: RevokeSessionInput): Promise<RevocationRow[]> {
    return this.tx(() => {
      const r = this.stmt('SELECT * FROM sessions WHERE id = ? AND revoked_at IS NULL').get(input.sessionId) as Row | undefined;
      if (!r) return [];
      const session = toSession(r);
      if (input.userId !== undefined && session.userId !== input.userId) return [];
      const rows = this.revokeSessionRows([session], input.now);
      this.audit(input.audit);
      return rows;
    });
  }

  async revokeUserSessions(input: RevokeUserSessionsInput): Promise<RevocationRow[]> {
    return this.tx(() => {
      const rows = this.revokeSessionRows(this.liveSessionsOf(input.userId, input.exceptSessionId), input.now);
      this.audit(input.audit);
      return rows;
    });
  }

  async revocationHead(): Promise<RevocationHead> {
    const r = this.stmt('SELECT log_id, last_seq FROM revocation_head WHERE id = 1').get() as Row | undefined;
    if (!r) throw new Error('revocation log not initialised: run migrate() first');
    return { logId: r.log_id as string, lastSeq: r.last_seq as number };
  }

  async readRevocations(afterSeq: number, limit: number, now: number): Promise<RevocationRow[]> {
    return (
      this.db
        .prepare('SELECT seq, kind, target, expires_at, created_at FROM revocations WHERE seq > ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq LIMIT ?')
        .all(afterSeq, now, limit) as Row[]
    ).map(toRevocation);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    return (this.stmt('SELECT * FROM signing_keys ORDER BY created_at, kid').all() as Row[]).map(toKey);
  }

  async insertFirstSigningKey(key: SigningKeyRecord): Promise<boolean> {
    return this.tx(() => {
      const active = this.stmt("SELECT 1 FROM signing_keys WHERE state = 'active'").get();
      if (active) return false;
      this.db
        .prepare(
          `INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private_key, created_at, activated_at, retired_at)
           VALUES (?, ?, 'active', ?, ?, ?, ?, NULL)`,
        )
        .run(key.kid, key.alg, key.publicJwk, key.sealedPrivateKey, key.createdAt, key.activatedAt ?? key.createdAt);
      return true;
    });
  }

  async insertSigningKey(key: SigningKeyRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private_key, created_at, activated_at, retired_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(key.kid, key.alg, key.state, key.publicJwk, key.sealedPrivateKey, key.createdAt, key.activatedAt, key.retiredAt);
  }

  async activateSigningKey(kid: string, now: number): Promise<boolean> {
    return this.tx(() => {
      const next = this.stmt("SELECT 1 FROM signing_keys WHERE kid = ? AND state = 'next'").get(kid);
      if (!next) return false;
      this.stmt("UPDATE signing_keys SET state = 'verify', retired_at = ? WHERE state = 'active'").run(now);
      this.stmt("UPDATE signing_keys SET state = 'active', activated_at = ? WHERE kid = ?").run(now, kid);
      return true;
    });
  }

  async disableSigningKeys(kids: string[], now: number, revokeSessions: boolean, audit?: AuditInput): Promise<RevocationRow[]> {
    return this.tx(() => {
      const targets = kids.filter((kid) => this.stmt("SELECT 1 FROM signing_keys WHERE kid = ? AND state <> 'disabled'").get(kid));
      const rows: RevocationRow[] = [];
      if (targets.length > 0) {
        const head = this.stmt('UPDATE revocation_head SET last_seq = last_seq + ? WHERE id = 1 RETURNING last_seq').get(targets.length) as Row;
        let seq = (head.last_seq as number) - targets.length;
        for (const kid of targets) {
          seq += 1;
          this.stmt("UPDATE signing_keys SET state = 'disabled', retired_at = COALESCE(retired_at, ?) WHERE kid = ?").run(now, kid);
          this.stmt("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (?, 'key', ?, NULL, ?)").run(seq, kid, now);
          rows.push({ seq, kind: 'key', target: kid, expiresAt: null, createdAt: now });
        }
      }
      if (revokeSessions) {
        const live = (this.stmt('SELECT * FROM sessions WHERE revoked_at IS NULL ORDER BY created_at, id').all() as Row[]).map(toSession);
        rows.push(...this.revokeSessionRows(live, now));
      }
      this.audit(audit);
      return rows;
    });
  }

  async deleteSigningKey(kid: string): Promise<void> {
    this.stmt("DELETE FROM signing_keys WHERE kid = ? AND state = 'verify'").run(kid);
  }

  async tryLease(name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    return this.tx(() => {
      const r = this.stmt('SELECT holder, expires_at FROM leases WHERE name = ?').get(name) as Row | undefined;
      if (r && r.holder !== holder && (r.expires_at as number) > now) return false;
      this.db
        .prepare('INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at')
        .run(name, holder, now + ttlMs);
      return true;
    });
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    this.stmt('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
  }

  async lockUser(input: LockUserInput): Promise<RevocationRow[] | null> {
    return this.tx(() => {
      const changed = this.stmt('UPDATE users SET locked_until = ? WHERE id = ?').run(input.lockedUntil, input.userId).changes;
      if (changed === 0) return null;
      const rows = this.revokeSessionRows(this.liveSessionsOf(input.userId), input.now);
      this.audit(input.audit);
      return rows;
    });
  }

  async unlockUser(userId: string, audit?: AuditInput): Promise<boolean> {
    return this.tx(() => {
      const changed = this.stmt('UPDATE users SET locked_until = NULL WHERE id = ?').run(userId).changes;
      if (changed > 0) this.audit(audit);
      return changed > 0;
    });
  }

  async setPassword(input: SetPasswordInput): Promise<RevocationRow[] | null> {
    return this.tx(() => {
      const changed = this.stmt('UPDATE users SET password_hash = ? WHERE id = ?').run(input.passwordHash, input.userId).changes;
      if (changed === 0) return null;
      const rows = this.revokeSessionRows(this.liveSessionsOf(input.userId, input.exceptSessionId), input.now);
      this.audit(input.audit);
      return rows;
    });
  }

  async deleteUser(userId: string, now: number, audit?: AuditInput): Promise<RevocationRow[] | null> {
    return this.tx(() => {
      const exists = this.stmt('SELECT 1 FROM users WHERE id = ?').get(userId);
      if (!exists) return null;
      const rows = this.revokeSessionRows(this.liveSessionsOf(userId), now);
      this.stmt('DELETE FROM users WHERE id = ?').run(userId);
      this.audit(audit);
      return rows;
    });
  }

  private liveSessionsOf(userId: string, exceptSessionId?: string): SessionRecord[] {
    return (
      this.stmt('SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ? ORDER BY created_at, id').all(userId, exceptSessionId ?? null) as Row[]
    ).map(toSession);
  }

  async createClient(client: ClientRecord, audit?: AuditInput): Promise<boolean> {
    return this.tx(() => {
      const inserted = this.db
        .prepare('INSERT INTO clients (id, name, secret_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(client.id, client.name, client.secretHash, client.createdAt).changes;
      if (inserted > 0) this.audit(audit);
      return inserted > 0;
    });
  }

  async findClientById(id: string): Promise<ClientRecord | null> {
    const r = this.stmt('SELECT * FROM clients WHERE id = ?').get(id) as Row | undefined;
    return r ? toClient(r) : null;
  }

  async listClients(): Promise<ClientRecord[]> {
    return (this.stmt('SELECT * FROM clients ORDER BY name').all() as Row[]).map(toClient);
  }

  async removeClient(name: string, audit?: AuditInput): Promise<boolean> {
    return this.tx(() => {
      const removed = this.stmt('DELETE FROM clients WHERE name = ?').run(name).changes;
      if (removed > 0) this.audit(audit);
      return removed > 0;
    });
  }

  async getThrottle(key: string, now: number): Promise<ThrottleState | null> {
    const r = this.stmt('SELECT * FROM throttles WHERE key = ? AND expires_at > ?').get(key, now) as Row | undefined;
    return r ? toThrottle(r) : null;
  }

  async recordThrottleFailure(key: string, now: number, policy: ThrottlePolicy): Promise<ThrottleState> {
    return this.tx(() => {
      const r = this.stmt('SELECT * FROM throttles WHERE key = ?').get(key) as Row | undefined;
      const next = nextThrottleState(r ? toThrottle(r) : null, now, policy);
      this.db
        .prepare(
          `INSERT INTO throttles (key, failures, blocked_until, expires_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, blocked_until = excluded.blocked_until, expires_at = excluded.expires_at`,
        )
        .run(key, next.failures, next.blockedUntil, next.expiresAt);
      return next;
    });
  }

  async clearThrottle(key: string): Promise<void> {
    this.stmt('DELETE FROM throttles WHERE key = ?').run(key);
  }

  async appendAudit(event: AuditInput): Promise<void> {
    this.audit(event);
  }

  async listAudit(afterId: number, limit: number): Promise<AuditEvent[]> {
    return (this.stmt('SELECT * FROM audit_events WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as Row[]).map((r) => ({
      id: r.id as number,
      at: r.at as number,
      type: r.type as AuditEvent['type'],
      actor: (r.actor as string | null) ?? null,
      subject: (r.subject as string | null) ?? null,
      ip: (r.ip as string | null) ?? null,
      userAgent: (r.user_agent as string | null) ?? null,
      detail: r.detail ? (JSON.parse(r.detail as string) as Record<string, unknown>) : null,
    }));
  }

  async pruneExpired(now: number, idleMs: number, auditBefore: number): Promise<PruneResult> {
    return this.tx(() => {
      const revocations = this.stmt("DELETE FROM revocations WHERE kind = 'session' AND expires_at <= ?").run(now).changes;
      const sessions = this.db
        .prepare(
          `DELETE FROM sessions WHERE access_expires_at <= ?
             AND (revoked_at IS NOT NULL OR expires_at <= ? OR last_seen_at + ? <= ?)`,
        )
        .run(now, now, idleMs, now).changes;
      const audit = this.stmt('DELETE FROM audit_events WHERE at < ?').run(auditBefore).changes;
      this.stmt('DELETE FROM throttles WHERE expires_at <= ?').run(now);
      this.stmt('DELETE FROM leases WHERE expires_at <= ?').run(now);
      return { revocations, sessions, audit };
    });
  }
}
