// The embedded store: one SQLite file in WAL mode (better-sqlite3). Every state change is one
// BEGIN IMMEDIATE transaction, which takes the database's write lock and so serialises writers
// across processes (a running server and the CLI on the same data directory).
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import type {
  AuditEvent,
  AuditInput,
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

const toRevocation = (r: Row): RevocationRow => ({
  seq: r.seq as number,
  kind: r.kind as RevocationRow['kind'],
  target: r.target as string,
  expiresAt: (r.expires_at as number | null) ?? null,
});

export interface SqliteStoreOptions {
  /** file path, or ':memory:' */
  path: string;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;

  constructor(options: SqliteStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL survives any process crash; only an OS crash or power loss can drop the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  /** Runs fn in BEGIN IMMEDIATE … COMMIT (rolled back if it throws). */
  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
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
    const r = this.db.prepare('SELECT * FROM users WHERE username_key = ?').get(usernameKey) as Row | undefined;
    return r ? toUser(r) : null;
  }

  async findUserById(id: string): Promise<UserRecord | null> {
    const r = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as Row | undefined;
    return r ? toUser(r) : null;
  }

  async listUsers(): Promise<UserRecord[]> {
    return (this.db.prepare('SELECT * FROM users ORDER BY username_key').all() as Row[]).map(toUser);
  }

  async createSession(session: NewSession, refreshHash: Buffer, audit?: AuditInput): Promise<CreateSessionResult> {
    return this.tx((): CreateSessionResult => {
      const user = this.db.prepare('SELECT locked_until FROM users WHERE id = ?').get(session.userId) as Row | undefined;
      if (!user) return { kind: 'no_user' };
      const lockedUntil = user.locked_until as number | null;
      if (lockedUntil !== null && lockedUntil > session.createdAt) return { kind: 'locked', lockedUntil };
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, device, ip, user_agent, created_at, last_seen_at, expires_at, access_expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(session.id, session.userId, session.device, session.ip, session.userAgent, session.createdAt, session.lastSeenAt, session.expiresAt, session.accessExpiresAt);
      this.db.prepare('INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)').run(refreshHash, session.id, session.createdAt);
      this.audit(audit);
      return { kind: 'created' };
    });
  }

  async rotateRefreshToken(input: RotateInput, reuseAudit: AuditInput): Promise<RotateResult> {
    return this.tx((): RotateResult => {
      const token = this.db.prepare('SELECT * FROM refresh_tokens WHERE hash = ?').get(input.presentedHash) as Row | undefined;
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
        this.db.prepare('UPDATE refresh_tokens SET used_at = ?, successor_hash = ? WHERE hash = ?').run(input.now, input.successorHash, input.presentedHash);
        this.db.prepare('INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)').run(input.successorHash, session.id, input.now);
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
    const r = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
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
    const head = this.db.prepare('UPDATE revocation_head SET last_seq = last_seq + ? WHERE id = 1 RETURNING last_seq').get(sessions.length) as Row;
    let seq = (head.last_seq as number) - sessions.length;
    const markRevoked = this.db.prepare('UPDATE sessions SET revoked_at = ? WHERE id = ?');
    const append = this.db.prepare("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (?, 'session', ?, ?, ?)");
    return sessions.map((s) => {
      seq += 1;
      markRevoked.run(now, s.id);
      append.run(seq, s.id, s.accessExpiresAt, now);
      return { seq, kind: 'session', target: s.id, expiresAt: s.accessExpiresAt };
    });
  }

  async revokeSession(input: RevokeSessionInput): Promise<RevocationRow[]> {
    return this.tx(() => {
      const r = this.db.prepare('SELECT * FROM sessions WHERE id = ? AND revoked_at IS NULL').get(input.sessionId) as Row | undefined;
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
      const sessions = (
        this.db.prepare('SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ? ORDER BY created_at, id').all(input.userId, input.exceptSessionId ?? null) as Row[]
      ).map(toSession);
      const rows = this.revokeSessionRows(sessions, input.now);
      this.audit(input.audit);
      return rows;
    });
  }

  async revocationHead(): Promise<RevocationHead> {
    const r = this.db.prepare('SELECT log_id, last_seq FROM revocation_head WHERE id = 1').get() as Row | undefined;
    if (!r) throw new Error('revocation log not initialised: run migrate() first');
    return { logId: r.log_id as string, lastSeq: r.last_seq as number };
  }

  async readRevocations(afterSeq: number, limit: number, now: number): Promise<RevocationRow[]> {
    return (
      this.db
        .prepare('SELECT seq, kind, target, expires_at FROM revocations WHERE seq > ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq LIMIT ?')
        .all(afterSeq, now, limit) as Row[]
    ).map(toRevocation);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    return (this.db.prepare('SELECT * FROM signing_keys ORDER BY created_at, kid').all() as Row[]).map(toKey);
  }

  async insertFirstSigningKey(key: SigningKeyRecord): Promise<boolean> {
    return this.tx(() => {
      const active = this.db.prepare("SELECT 1 FROM signing_keys WHERE state = 'active'").get();
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

  async appendAudit(event: AuditInput): Promise<void> {
    this.audit(event);
  }

  async listAudit(afterId: number, limit: number): Promise<AuditEvent[]> {
    return (this.db.prepare('SELECT * FROM audit_events WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as Row[]).map((r) => ({
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
      const revocations = this.db.prepare("DELETE FROM revocations WHERE kind = 'session' AND expires_at <= ?").run(now).changes;
      const sessions = this.db
        .prepare(
          `DELETE FROM sessions WHERE access_expires_at <= ?
             AND (revoked_at IS NOT NULL OR expires_at <= ? OR last_seen_at + ? <= ?)`,
        )
        .run(now, now, idleMs, now).changes;
      const audit = this.db.prepare('DELETE FROM audit_events WHERE at < ?').run(auditBefore).changes;
      return { revocations, sessions, audit };
    });
  }
}
