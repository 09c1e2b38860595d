// The scale-out store: PostgreSQL through one pg.Pool per node. Several nodes write to the same
// database, so each flow that must be atomic takes a row lock inside its own transaction (the
// session row for rotation and logout, the user row for logout everywhere, the head row for log
// seqs); nothing relies on state held in this process.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type {
  AuditEvent,
  AuditInput,
  ClientRecord,
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
  SetPasswordInput,
  SigningKeyRecord,
  Store,
  ThrottlePolicy,
  ThrottleState,
  UserRecord,
  LockUserInput,
} from '../port.ts';
import { nextThrottleState } from '../port.ts';
import { toStoreError } from './errors.ts';
import { MIGRATIONS } from './migrations.ts';

export interface PostgresStoreOptions {
  connectionString: string;
  /** every table lives in this schema (created by migrate() when missing); default: the server's search_path */
  schema?: string;
  /** connections this node may hold; default 10 */
  poolSize?: number;
}

// Fixed keys for pg_advisory_xact_lock: every node of every version must use the same ones.
const MIGRATION_LOCK = 4_711_000_001;
const KEY_RING_LOCK = 4_711_000_002;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/;
// Without a bound, a server that accepts TCP but never answers would hang every request.
const CONNECT_TIMEOUT_MS = 5_000;
const TX_ATTEMPTS = 3;
// deadlock_detected, serialization_failure: PostgreSQL rolled the transaction back whole, so it can run again
const RETRYABLE_CODES = new Set(['40P01', '40001']);

// Every BIGINT here is a ms timestamp, a seq or an id, all far below 2^53: JS numbers, as in SQLite.
const INT8_AS_NUMBER = new pg.TypeOverrides();
INT8_AS_NUMBER.setTypeParser(pg.types.builtins.INT8, (text: string) => Number(text));

interface UserRow {
  id: string;
  username: string;
  username_key: string;
  password_hash: string;
  is_admin: boolean;
  locked_until: number | null;
  created_at: number;
}

interface SessionRow {
  id: string;
  user_id: string;
  device: string | null;
  ip: string | null;
  user_agent: string | null;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  access_expires_at: number;
  revoked_at: number | null;
}

interface KeyRow {
  kid: string;
  alg: string;
  state: SigningKeyRecord['state'];
  public_jwk: string;
  sealed_private_key: Buffer;
  created_at: number;
  activated_at: number | null;
  retired_at: number | null;
}

interface RevocationDbRow {
  seq: number;
  kind: RevocationRow['kind'];
  target: string;
  expires_at: number | null;
  created_at: number;
}

interface ClientRow {
  id: string;
  name: string;
  secret_hash: Buffer;
  created_at: number;
}

interface ThrottleRow {
  failures: number;
  blocked_until: number;
  expires_at: number;
}

interface AuditRow {
  id: number;
  at: number;
  type: AuditEvent['type'];
  actor: string | null;
  subject: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: string | null;
}

const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  username: r.username,
  usernameKey: r.username_key,
  passwordHash: r.password_hash,
  isAdmin: r.is_admin,
  lockedUntil: r.locked_until,
  createdAt: r.created_at,
});

const toSession = (r: SessionRow): SessionRecord => ({
  id: r.id,
  userId: r.user_id,
  device: r.device,
  ip: r.ip,
  userAgent: r.user_agent,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  expiresAt: r.expires_at,
  accessExpiresAt: r.access_expires_at,
  revokedAt: r.revoked_at,
});

const toKey = (r: KeyRow): SigningKeyRecord => ({
  kid: r.kid,
  alg: r.alg,
  state: r.state,
  publicJwk: r.public_jwk,
  sealedPrivateKey: r.sealed_private_key,
  createdAt: r.created_at,
  activatedAt: r.activated_at,
  retiredAt: r.retired_at,
});

const toClient = (r: ClientRow): ClientRecord => ({ id: r.id, name: r.name, secretHash: r.secret_hash, createdAt: r.created_at });

const toThrottle = (r: ThrottleRow): ThrottleState => ({ failures: r.failures, blockedUntil: r.blocked_until, expiresAt: r.expires_at });

const toRevocation = (r: RevocationDbRow): RevocationRow => ({ seq: r.seq, kind: r.kind, target: r.target, expiresAt: r.expires_at, createdAt: r.created_at });

const toAudit = (r: AuditRow): AuditEvent => ({
  id: r.id,
  at: r.at,
  type: r.type,
  actor: r.actor,
  subject: r.subject,
  ip: r.ip,
  userAgent: r.user_agent,
  detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
});

/**
 * PostgreSQL TEXT cannot hold U+0000, and the value may come from a client (a device name, a
 * user agent): it becomes U+FFFD rather than failing the write with a 500. Lookups go through
 * the same mapping, so what was stored is still found.
 */
function bindable(value: unknown): unknown {
  if (typeof value === 'string') return value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value;
  if (Array.isArray(value)) return value.map(bindable);
  return value;
}

type Run = <R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: readonly unknown[]) => Promise<pg.QueryResult<R>>;

function isRetryable(err: unknown): boolean {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && RETRYABLE_CODES.has(code);
}

export class PostgresStore implements Store {
  private readonly pool: pg.Pool;
  private readonly schema: string | undefined;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    if (options.schema !== undefined && !SCHEMA_NAME.test(options.schema)) {
      throw new TypeError(`PostgresStore: schema must match ${SCHEMA_NAME}, got ${JSON.stringify(options.schema)}`);
    }
    const poolSize = options.poolSize ?? 10;
    if (!Number.isInteger(poolSize) || poolSize < 1) throw new TypeError(`PostgresStore: poolSize must be a positive integer, got ${poolSize}`);
    this.schema = options.schema;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: poolSize,
      types: INT8_AS_NUMBER,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      // names the node's connections in pg_stat_activity (and lets tests find one store's backends)
      application_name: options.schema ? `latch/${options.schema}` : 'latch',
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // An idle connection died (restart, failover, terminated backend). The pool has already
    // dropped it and dials a fresh one on the next checkout; a request that needed the database
    // meanwhile got StoreUnavailableError. Unheard, this event would crash the process.
    this.pool.on('error', () => {});
  }

  /** One statement outside a transaction (reads, and single-row appends that are atomic alone). */
  private async query<R extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params.map(bindable));
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /** Runs work in BEGIN … COMMIT on one pooled connection; rolled back if it throws, rerun after a deadlock. */
  private async tx<T>(work: (run: Run) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.txOnce(work);
      } catch (err) {
        if (attempt < TX_ATTEMPTS && isRetryable(err)) continue;
        throw toStoreError(err);
      }
    }
  }

  private async txOnce<T>(work: (run: Run) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A socket that dies while the client is checked out is reported as an 'error' event on it,
    // besides failing the query in flight; with no listener that event would crash the process.
    let broken: Error | undefined;
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    const run: Run = (sql, params) => (params && params.length > 0 ? client.query(sql, params.map(bindable)) : client.query(sql));
    try {
      await client.query('BEGIN');
      const result = await work(run);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        // the connection is in an unknown state: it must not go back to the pool
        broken ??= rollbackErr instanceof Error ? rollbackErr : new Error('ROLLBACK failed');
      });
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken ?? false);
    }
  }

  async migrate(): Promise<void> {
    await this.tx(async (run) => {
      // nodes starting at once queue here; each later one finds the work done
      await run(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      if (this.schema) await run(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const applied = new Set((await run<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await run(m.sql);
        await run('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [m.version, Date.now()]);
      }
      await run('INSERT INTO revocation_head (id, log_id, last_seq) VALUES (1, $1, 0) ON CONFLICT (id) DO NOTHING', [randomBytes(16).toString('base64url')]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private async audit(run: Run, event: AuditInput | undefined): Promise<void> {
    if (!event) return;
    await run('INSERT INTO audit_events (at, type, actor, subject, ip, user_agent, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      event.at,
      event.type,
      event.actor,
      event.subject,
      event.ip,
      event.userAgent,
      event.detail ? JSON.stringify(event.detail) : null,
    ]);
  }

  async createUser(user: NewUser, audit?: AuditInput): Promise<UserRecord | null> {
    return this.tx(async (run) => {
      const inserted = await run(
        `INSERT INTO users (id, username, username_key, password_hash, is_admin, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (username_key) DO NOTHING`,
        [user.id, user.username, user.usernameKey, user.passwordHash, user.isAdmin, user.createdAt],
      );
      if (inserted.rowCount === 0) return null;
      await this.audit(run, audit);
      return { ...user, lockedUntil: null };
    });
  }

  async findUserByKey(usernameKey: string): Promise<UserRecord | null> {
    const r = (await this.query<UserRow>('SELECT * FROM users WHERE username_key = $1', [usernameKey])).rows[0];
    return r ? toUser(r) : null;
  }

  async findUserById(id: string): Promise<UserRecord | null> {
    const r = (await this.query<UserRow>('SELECT * FROM users WHERE id = $1', [id])).rows[0];
    return r ? toUser(r) : null;
  }

  async listUsers(): Promise<UserRecord[]> {
    // byte order, as SQLite sorts: the database's collation must not change what a listing shows
    return (await this.query<UserRow>('SELECT * FROM users ORDER BY username_key COLLATE "C"')).rows.map(toUser);
  }

  async createSession(session: NewSession, refreshHash: Buffer, audit?: AuditInput): Promise<CreateSessionResult> {
    return this.tx(async (run): Promise<CreateSessionResult> => {
      // FOR SHARE waits for a transaction that is locking the user or ending all their sessions:
      // its lock is seen here, and a session made here is seen by it (see revokeUserSessions)
      const user = (await run<{ locked_until: number | null }>('SELECT locked_until FROM users WHERE id = $1 FOR SHARE', [session.userId])).rows[0];
      if (!user) return { kind: 'no_user' };
      if (user.locked_until !== null && user.locked_until > session.createdAt) return { kind: 'locked', lockedUntil: user.locked_until };
      await run(
        `INSERT INTO sessions (id, user_id, device, ip, user_agent, created_at, last_seen_at, expires_at, access_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [session.id, session.userId, session.device, session.ip, session.userAgent, session.createdAt, session.lastSeenAt, session.expiresAt, session.accessExpiresAt],
      );
      await run('INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)', [refreshHash, session.id, session.createdAt]);
      await this.audit(run, audit);
      return { kind: 'created' };
    });
  }

  async rotateRefreshToken(input: RotateInput, reuseAudit: AuditInput): Promise<RotateResult> {
    return this.tx(async (run): Promise<RotateResult> => {
      const found = (await run<{ session_id: string }>('SELECT session_id FROM refresh_tokens WHERE hash = $1', [input.presentedHash])).rows[0];
      if (!found) return { kind: 'invalid' };
      // every rotation, reuse and revocation of this session queues on this lock, on every node
      const row = (
        await run<SessionRow & { locked_until: number | null }>(
          'SELECT s.*, u.locked_until FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 FOR UPDATE OF s',
          [found.session_id],
        )
      ).rows[0];
      if (!row) return { kind: 'invalid' };
      // Read the token only now that the lock is held: a rotation that committed while we waited
      // must be seen, or two callers would both find it unused and both rotate it.
      const token = (await run<{ used_at: number | null; successor_hash: Buffer | null }>('SELECT used_at, successor_hash FROM refresh_tokens WHERE hash = $1', [input.presentedHash])).rows[0];
      if (!token) return { kind: 'invalid' };
      const session = toSession(row);
      if (
        session.revokedAt !== null ||
        input.now >= session.expiresAt ||
        input.now >= session.lastSeenAt + input.idleMs ||
        (row.locked_until !== null && row.locked_until > input.now)
      ) {
        return { kind: 'invalid' };
      }
      const usedAt = token.used_at;
      if (usedAt !== null) {
        const successor = token.successor_hash;
        const inGrace = input.graceMs > 0 && input.now - usedAt < input.graceMs && successor !== null && successor.equals(input.successorHash);
        if (!inGrace) {
          const revocations = await this.revokeSessionRows(run, [session], input.now);
          await this.audit(run, reuseAudit);
          return { kind: 'reused', session: { ...session, revokedAt: input.now }, revocations };
        }
      } else {
        await run('UPDATE refresh_tokens SET used_at = $1, successor_hash = $2 WHERE hash = $3', [input.now, input.successorHash, input.presentedHash]);
        await run('INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)', [input.successorHash, session.id, input.now]);
      }
      const accessExpiresAt = Math.max(session.accessExpiresAt, input.accessExpiresAt);
      await run('UPDATE sessions SET last_seen_at = $1, access_expires_at = $2, ip = COALESCE($3, ip), user_agent = COALESCE($4, user_agent) WHERE id = $5', [
        input.now,
        accessExpiresAt,
        input.ip,
        input.userAgent,
        session.id,
      ]);
      return {
        kind: 'rotated',
        replay: usedAt !== null,
        session: { ...session, lastSeenAt: input.now, accessExpiresAt, ip: input.ip ?? session.ip, userAgent: input.userAgent ?? session.userAgent },
      };
    });
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    const r = (await this.query<SessionRow>('SELECT * FROM sessions WHERE id = $1', [id])).rows[0];
    return r ? toSession(r) : null;
  }

  async findSessionByRefreshHash(hash: Buffer): Promise<SessionRecord | null> {
    const r = (await this.query<SessionRow>('SELECT s.* FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1', [hash])).rows[0];
    return r ? toSession(r) : null;
  }

  async listLiveSessions(userId: string, now: number, idleMs: number): Promise<SessionRecord[]> {
    const result = await this.query<SessionRow>(
      `SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at + $3 > $2
       ORDER BY created_at DESC, id COLLATE "C"`,
      [userId, now, idleMs],
    );
    return result.rows.map(toSession);
  }

  /**
   * Marks the sessions revoked (the caller holds their row locks) and appends one log row each.
   * Seqs come from the head row: its lock is held until commit, so seqs are handed out in commit
   * order and a reader that sees seq n has every row below n already visible.
   */
  private async revokeSessionRows(run: Run, sessions: SessionRecord[], now: number): Promise<RevocationRow[]> {
    if (sessions.length === 0) return [];
    await run('UPDATE sessions SET revoked_at = $1 WHERE id = ANY($2::text[])', [now, sessions.map((s) => s.id)]);
    return this.appendRevocations(
      run,
      sessions.map((s) => ({ kind: 'session', target: s.id, expiresAt: s.accessExpiresAt })),
      now,
    );
  }

  /** Takes the next seqs from the head row and writes the rows. Called last in a transaction, so the one lock every revoker in the cluster shares is held briefly. */
  private async appendRevocations(run: Run, entries: Omit<RevocationRow, 'seq' | 'createdAt'>[], now: number): Promise<RevocationRow[]> {
    const head = (await run<{ last_seq: number }>('UPDATE revocation_head SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq', [entries.length])).rows[0];
    if (!head) throw new Error('revocation log not initialised: run migrate() first');
    const first = head.last_seq - entries.length + 1;
    const rows = entries.map((e, i): RevocationRow => ({ seq: first + i, ...e, createdAt: now }));
    await run(
      `INSERT INTO revocations (seq, kind, target, expires_at, created_at)
       SELECT r.seq, r.kind, r.target, r.expires_at, $5::bigint FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS r(seq, kind, target, expires_at)`,
      [rows.map((r) => r.seq), rows.map((r) => r.kind), rows.map((r) => r.target), rows.map((r) => r.expiresAt), now],
    );
    return rows;
  }

  /** The user's sessions not yet revoked, row-locked, oldest first; the caller holds the user row. */
  private async unrevokedSessionsOf(run: Run, userId: string, exceptSessionId?: string): Promise<SessionRecord[]> {
    const result = await run<SessionRow>(
      `SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2
       ORDER BY created_at, id COLLATE "C" FOR UPDATE`,
      [userId, exceptSessionId ?? null],
    );
    return result.rows.map(toSession);
  }

  async revokeSession(input: RevokeSessionInput): Promise<RevocationRow[]> {
    return this.tx(async (run) => {
      // two revokers of one session: the second waits here, then finds it revoked
      const r = (await run<SessionRow>('SELECT * FROM sessions WHERE id = $1 AND revoked_at IS NULL FOR UPDATE', [input.sessionId])).rows[0];
      if (!r) return [];
      const session = toSession(r);
      if (input.userId !== undefined && session.userId !== input.userId) return [];
      const rows = await this.revokeSessionRows(run, [session], input.now);
      await this.audit(run, input.audit);
      return rows;
    });
  }

  async revokeUserSessions(input: RevokeUserSessionsInput): Promise<RevocationRow[]> {
    return this.tx(async (run) => {
      // Conflicts with createSession's FOR SHARE: a login in flight commits first and its session
      // is read below; one that starts later waits until this commits and its session lives.
      await run('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [input.userId]);
      const rows = await this.revokeSessionRows(run, await this.unrevokedSessionsOf(run, input.userId, input.exceptSessionId), input.now);
      await this.audit(run, input.audit);
      return rows;
    });
  }

  async revocationHead(): Promise<RevocationHead> {
    const r = (await this.query<{ log_id: string; last_seq: number }>('SELECT log_id, last_seq FROM revocation_head WHERE id = 1')).rows[0];
    if (!r) throw new Error('revocation log not initialised: run migrate() first');
    return { logId: r.log_id, lastSeq: r.last_seq };
  }

  async readRevocations(afterSeq: number, limit: number, now: number): Promise<RevocationRow[]> {
    const result = await this.query<RevocationDbRow>(
      'SELECT seq, kind, target, expires_at, created_at FROM revocations WHERE seq > $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY seq LIMIT $3',
      [afterSeq, now, limit],
    );
    return result.rows.map(toRevocation);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    return (await this.query<KeyRow>('SELECT * FROM signing_keys ORDER BY created_at, kid COLLATE "C"')).rows.map(toKey);
  }

  async insertFirstSigningKey(key: SigningKeyRecord): Promise<boolean> {
    return this.tx(async (run) => {
      // two nodes booting on an empty database: the second waits here, then sees the first's key
      await run(`SELECT pg_advisory_xact_lock(${KEY_RING_LOCK})`);
      const active = await run("SELECT 1 FROM signing_keys WHERE state = 'active' LIMIT 1");
      if (active.rows.length > 0) return false;
      await run(
        `INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private_key, created_at, activated_at, retired_at)
         VALUES ($1, $2, 'active', $3, $4, $5, $6, NULL)`,
        [key.kid, key.alg, key.publicJwk, key.sealedPrivateKey, key.createdAt, key.activatedAt ?? key.createdAt],
      );
      return true;
    });
  }

  async insertSigningKey(key: SigningKeyRecord): Promise<void> {
    await this.query(
      `INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private_key, created_at, activated_at, retired_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [key.kid, key.alg, key.state, key.publicJwk, key.sealedPrivateKey, key.createdAt, key.activatedAt, key.retiredAt],
    );
  }

  async activateSigningKey(kid: string, now: number): Promise<boolean> {
    return this.tx(async (run) => {
      // two nodes activating different keys at once would otherwise leave two active keys
      await run(`SELECT pg_advisory_xact_lock(${KEY_RING_LOCK})`);
      const next = await run("SELECT 1 FROM signing_keys WHERE kid = $1 AND state = 'next'", [kid]);
      if (next.rows.length === 0) return false;
      await run("UPDATE signing_keys SET state = 'verify', retired_at = $1 WHERE state = 'active'", [now]);
      await run("UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2", [now, kid]);
      return true;
    });
  }

  async disableSigningKeys(kids: string[], now: number, revokeSessions: boolean, audit?: AuditInput): Promise<RevocationRow[]> {
    return this.tx(async (run) => {
      // a key disabled by two nodes at once gets one log row, not two
      await run(`SELECT pg_advisory_xact_lock(${KEY_RING_LOCK})`);
      const enabled = new Set(
        (await run<{ kid: string }>("SELECT kid FROM signing_keys WHERE kid = ANY($1::text[]) AND state <> 'disabled'", [kids])).rows.map((r) => r.kid),
      );
      const targets = kids.filter((kid) => enabled.has(kid));
      let sessions: SessionRecord[] = [];
      if (revokeSessions) {
        // Holds off every session write (logins, rotations) until commit while reads go on:
        // "every live session" must include one whose transaction would commit meanwhile.
        await run('LOCK TABLE sessions IN EXCLUSIVE MODE');
        sessions = (await run<SessionRow>('SELECT * FROM sessions WHERE revoked_at IS NULL ORDER BY created_at, id COLLATE "C"')).rows.map(toSession);
      }
      const rows: RevocationRow[] = [];
      if (targets.length > 0) {
        await run("UPDATE signing_keys SET state = 'disabled', retired_at = COALESCE(retired_at, $1) WHERE kid = ANY($2::text[])", [now, targets]);
        rows.push(...(await this.appendRevocations(run, targets.map((kid) => ({ kind: 'key', target: kid, expiresAt: null })), now)));
      }
      rows.push(...(await this.revokeSessionRows(run, sessions, now)));
      await this.audit(run, audit);
      return rows;
    });
  }

  async deleteSigningKey(kid: string): Promise<void> {
    await this.query("DELETE FROM signing_keys WHERE kid = $1 AND state = 'verify'", [kid]);
  }

  async tryLease(name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    // One statement: the conflicting row is locked and the WHERE sees its latest version, so
    // of two nodes racing for a free or expired lease exactly one gets it.
    const result = await this.query(
      `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
       RETURNING 1`,
      [name, holder, now + ttlMs, now],
    );
    return result.rows.length > 0;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
  }

  async lockUser(input: LockUserInput): Promise<RevocationRow[] | null> {
    return this.tx(async (run) => {
      // The UPDATE's row lock conflicts with createSession's FOR SHARE: a login in flight commits
      // first and its session is revoked below; a later one sees locked_until.
      const changed = await run('UPDATE users SET locked_until = $1 WHERE id = $2', [input.lockedUntil, input.userId]);
      if (changed.rowCount === 0) return null;
      const rows = await this.revokeSessionRows(run, await this.unrevokedSessionsOf(run, input.userId), input.now);
      await this.audit(run, input.audit);
      return rows;
    });
  }

  async unlockUser(userId: string, audit?: AuditInput): Promise<boolean> {
    return this.tx(async (run) => {
      const changed = await run('UPDATE users SET locked_until = NULL WHERE id = $1', [userId]);
      if (changed.rowCount === 0) return false;
      await this.audit(run, audit);
      return true;
    });
  }

  async setPassword(input: SetPasswordInput): Promise<RevocationRow[] | null> {
    return this.tx(async (run) => {
      // the user row lock orders this against logins in flight, as in lockUser
      const changed = await run('UPDATE users SET password_hash = $1 WHERE id = $2', [input.passwordHash, input.userId]);
      if (changed.rowCount === 0) return null;
      const rows = await this.revokeSessionRows(run, await this.unrevokedSessionsOf(run, input.userId, input.exceptSessionId), input.now);
      await this.audit(run, input.audit);
      return rows;
    });
  }

  async deleteUser(userId: string, now: number, audit?: AuditInput): Promise<RevocationRow[] | null> {
    return this.tx(async (run) => {
      const exists = await run('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [userId]);
      if (exists.rows.length === 0) return null;
      const rows = await this.revokeSessionRows(run, await this.unrevokedSessionsOf(run, userId), now);
      await run('DELETE FROM users WHERE id = $1', [userId]);
      await this.audit(run, audit);
      return rows;
    });
  }

  async createClient(client: ClientRecord, audit?: AuditInput): Promise<boolean> {
    return this.tx(async (run) => {
      const inserted = await run('INSERT INTO clients (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
        client.id,
        client.name,
        client.secretHash,
        client.createdAt,
      ]);
      if (inserted.rowCount === 0) return false;
      await this.audit(run, audit);
      return true;
    });
  }

  async findClientById(id: string): Promise<ClientRecord | null> {
    const r = (await this.query<ClientRow>('SELECT * FROM clients WHERE id = $1', [id])).rows[0];
    return r ? toClient(r) : null;
  }

  async listClients(): Promise<ClientRecord[]> {
    return (await this.query<ClientRow>('SELECT * FROM clients ORDER BY name COLLATE "C"')).rows.map(toClient);
  }

  async removeClient(name: string, audit?: AuditInput): Promise<boolean> {
    return this.tx(async (run) => {
      const removed = await run('DELETE FROM clients WHERE name = $1', [name]);
      if (removed.rowCount === 0) return false;
      await this.audit(run, audit);
      return true;
    });
  }

  async getThrottle(key: string, now: number): Promise<ThrottleState | null> {
    const r = (await this.query<ThrottleRow>('SELECT failures, blocked_until, expires_at FROM throttles WHERE key = $1 AND expires_at > $2', [key, now])).rows[0];
    return r ? toThrottle(r) : null;
  }

  async recordThrottleFailure(key: string, now: number, policy: ThrottlePolicy): Promise<ThrottleState> {
    return this.tx(async (run) => {
      // A row must exist to be locked: two first failures at once both count. The placeholder
      // has already expired, so nextThrottleState treats it as no history.
      await run('INSERT INTO throttles (key, failures, blocked_until, expires_at) VALUES ($1, 0, 0, 0) ON CONFLICT (key) DO NOTHING', [key]);
      const r = (await run<ThrottleRow>('SELECT failures, blocked_until, expires_at FROM throttles WHERE key = $1 FOR UPDATE', [key])).rows[0];
      const next = nextThrottleState(r ? toThrottle(r) : null, now, policy);
      // an upsert, not an UPDATE: a clearThrottle may have deleted the row between the two statements
      await run(
        `INSERT INTO throttles (key, failures, blocked_until, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, blocked_until = excluded.blocked_until, expires_at = excluded.expires_at`,
        [key, next.failures, next.blockedUntil, next.expiresAt],
      );
      return next;
    });
  }

  async clearThrottle(key: string): Promise<void> {
    await this.query('DELETE FROM throttles WHERE key = $1', [key]);
  }

  async appendAudit(event: AuditInput): Promise<void> {
    // one INSERT is atomic alone: no transaction round trips
    await this.audit(<R extends pg.QueryResultRow>(sql: string, params?: readonly unknown[]) => this.query<R>(sql, params), event);
  }

  async listAudit(afterId: number, limit: number): Promise<AuditEvent[]> {
    return (await this.query<AuditRow>('SELECT * FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2', [afterId, limit])).rows.map(toAudit);
  }

  async pruneExpired(now: number, idleMs: number, auditBefore: number): Promise<PruneResult> {
    return this.tx(async (run) => {
      const revocations = (await run("DELETE FROM revocations WHERE kind = 'session' AND expires_at <= $1", [now])).rowCount ?? 0;
      const sessions =
        (
          await run(
            `DELETE FROM sessions WHERE access_expires_at <= $1
               AND (revoked_at IS NOT NULL OR expires_at <= $1 OR last_seen_at + $2 <= $1)`,
            [now, idleMs],
          )
        ).rowCount ?? 0;
      const audit = (await run('DELETE FROM audit_events WHERE at < $1', [auditBefore])).rowCount ?? 0;
      await run('DELETE FROM throttles WHERE expires_at <= $1', [now]);
      await run('DELETE FROM leases WHERE expires_at <= $1', [now]);
      return { revocations, sessions, audit };
    });
  }
}
