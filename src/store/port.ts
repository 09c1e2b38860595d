// The storage port: one narrow interface named after the flows it serves. Every method that
// changes state runs in one transaction and says in its comment what is atomic. Adapters
// (sqlite/, postgres/) implement it; core depends on this file only. Times are milliseconds
// since the epoch; secrets arrive already hashed.

export interface UserRecord {
  id: string;
  username: string;
  usernameKey: string;
  passwordHash: string;
  isAdmin: boolean;
  /** ms; login and refresh are refused while now < lockedUntil */
  lockedUntil: number | null;
  createdAt: number;
}

export interface NewUser {
  id: string;
  username: string;
  usernameKey: string;
  passwordHash: string;
  isAdmin: boolean;
  createdAt: number;
}

export interface SessionRecord {
  id: string;
  userId: string;
  device: string | null;
  ip: string | null;
  userAgent: string | null;
  createdAt: number;
  lastSeenAt: number;
  /** absolute end of the session */
  expiresAt: number;
  /** when the last access token issued for this session stops being accepted (its exp plus clock tolerance) */
  accessExpiresAt: number;
  revokedAt: number | null;
}

export type NewSession = Omit<SessionRecord, 'revokedAt'>;

export type KeyState = 'next' | 'active' | 'verify' | 'disabled';

export interface SigningKeyRecord {
  kid: string;
  alg: string;
  state: KeyState;
  /** public JWK, JSON text */
  publicJwk: string;
  /** private key sealed with the master key */
  sealedPrivateKey: Buffer;
  createdAt: number;
  /** when it became (or becomes) the signing key */
  activatedAt: number | null;
  /** when it stopped signing */
  retiredAt: number | null;
}

export type RevocationKind = 'session' | 'key';

export interface RevocationRow {
  seq: number;
  kind: RevocationKind;
  /** session id or kid */
  target: string;
  /** ms; null: never expires (keys) */
  expiresAt: number | null;
}

export interface RevocationHead {
  /** the log's epoch: a different value means the store was replaced or restored */
  logId: string;
  /** highest committed seq */
  lastSeq: number;
}

export type AuditType =
  | 'user.created'
  | 'login.succeeded'
  | 'login.failed'
  | 'login.throttled'
  | 'logout'
  | 'refresh.reused'
  | 'session.revoked'
  | 'password.changed'
  | 'user.locked'
  | 'user.unlocked'
  | 'user.deleted'
  | 'password.reset'
  | 'key.rotated'
  | 'client.added'
  | 'client.removed';

export interface AuditInput {
  type: AuditType;
  at: number;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  userAgent: string | null;
  detail: Record<string, unknown> | null;
}

export interface AuditEvent extends AuditInput {
  id: number;
}

export type CreateSessionResult =
  | { kind: 'created' }
  | { kind: 'locked'; lockedUntil: number }
  | { kind: 'no_user' };

export interface RotateInput {
  presentedHash: Buffer;
  successorHash: Buffer;
  now: number;
  /** a token rotated less than this long ago yields the same successor again; 0: never */
  graceMs: number;
  /** a session not refreshed for this long has ended */
  idleMs: number;
  /** accessExpiresAt of the access token about to be issued */
  accessExpiresAt: number;
  ip: string | null;
  userAgent: string | null;
}

export type RotateResult =
  /** the presented token was current (or replayed inside the grace window): its successor is live */
  | { kind: 'rotated'; session: SessionRecord; replay: boolean }
  /** the presented token had been used before: the session is revoked, these rows were written */
  | { kind: 'reused'; session: SessionRecord; revocations: RevocationRow[] }
  /** unknown token, or its session is revoked, expired, idle, or its user is locked or gone */
  | { kind: 'invalid' };

export interface RevokeSessionInput {
  sessionId: string;
  /** when set, only a session of this user is revoked */
  userId?: string;
  now: number;
  audit?: AuditInput;
}

export interface RevokeUserSessionsInput {
  userId: string;
  /** this session stays live (logout of "others", password change) */
  exceptSessionId?: string;
  now: number;
  audit?: AuditInput;
}

export interface PruneResult {
  revocations: number;
  sessions: number;
  audit: number;
}

export interface Store {
  /** Applies pending migrations; safe when several processes start at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /** Inserts the user unless its usernameKey is taken: then returns null. */
  createUser(user: NewUser, audit?: AuditInput): Promise<UserRecord | null>;
  findUserByKey(usernameKey: string): Promise<UserRecord | null>;
  findUserById(id: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;

  /**
   * Creates a session and its first refresh token in one transaction that re-reads the user,
   * so a lock or deletion committed before it is always seen.
   */
  createSession(session: NewSession, refreshHash: Buffer, audit?: AuditInput): Promise<CreateSessionResult>;

  /**
   * Single-use rotation. Locks the session row; exactly one concurrent caller presenting a
   * current token rotates it. Replays inside the grace window get `rotated` with replay=true
   * (the same successor); any other reuse revokes the session in the same transaction.
   */
  rotateRefreshToken(input: RotateInput, reuseAudit: AuditInput): Promise<RotateResult>;

  getSession(id: string): Promise<SessionRecord | null>;
  /** Sessions not revoked, not past their absolute end, not idle for longer than idleMs. */
  listLiveSessions(userId: string, now: number, idleMs: number): Promise<SessionRecord[]>;

  /**
   * Marks the session revoked and appends one `session` row to the log, in one transaction.
   * Returns the rows written: none when the session does not exist, belongs to another user,
   * or was already revoked.
   */
  revokeSession(input: RevokeSessionInput): Promise<RevocationRow[]>;

  /** Revokes every session of the user that exists at commit time, one log row each, in one transaction. */
  revokeUserSessions(input: RevokeUserSessionsInput): Promise<RevocationRow[]>;

  /** The log's epoch and high-water mark: the cheap read every node polls. */
  revocationHead(): Promise<RevocationHead>;
  /** Rows with seq > afterSeq that have not expired at `now`, oldest first, at most `limit`. */
  readRevocations(afterSeq: number, limit: number, now: number): Promise<RevocationRow[]>;

  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /** Inserts the key as the active one unless an active key exists. Returns whether it was inserted. */
  insertFirstSigningKey(key: SigningKeyRecord): Promise<boolean>;

  appendAudit(event: AuditInput): Promise<void>;
  /** Events with id > afterId, oldest first. */
  listAudit(afterId: number, limit: number): Promise<AuditEvent[]>;

  /**
   * Deletes what can no longer matter: log rows past their expiry, sessions that ended and
   * whose tokens have expired (with their refresh tokens), audit events older than auditBefore.
   */
  pruneExpired(now: number, idleMs: number, auditBefore: number): Promise<PruneResult>;
}
