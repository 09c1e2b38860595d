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
  /** ms: when the revoking transaction committed (for the commit-to-apply lag) */
  createdAt: number;
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

/** A resource server's credential (`latch clients add`): the secret is stored only as a hash. */
export interface ClientRecord {
  id: string;
  name: string;
  /** SHA-256 of the secret */
  secretHash: Buffer;
  createdAt: number;
}

export interface LockUserInput {
  userId: string;
  /** ms; login and refresh are refused until then */
  lockedUntil: number;
  now: number;
  audit?: AuditInput;
}

export interface SetPasswordInput {
  userId: string;
  passwordHash: string;
  /** this session stays live (a user changing their own password); absent: every session ends */
  exceptSessionId?: string;
  now: number;
  audit?: AuditInput;
}

/** Failed-login counter state for one key (a device, a username, an IP). */
export interface ThrottleState {
  failures: number;
  /** ms; attempts are refused until then (0: not blocked) */
  blockedUntil: number;
  /** ms; the state is forgotten after this */
  expiresAt: number;
}

/** How failures turn into a block: the same rule for every backend (SQL or Redis). */
export interface ThrottlePolicy {
  /** failures before the first block */
  threshold: number;
  /** the state is forgotten this long after the last failure */
  windowMs: number;
  /** the first block; each further failure doubles it */
  baseBlockMs: number;
  maxBlockMs: number;
}

/** The one definition of the rule every adapter applies inside its transaction. */
export function nextThrottleState(previous: ThrottleState | null, now: number, policy: ThrottlePolicy): ThrottleState {
  const failures = (previous && previous.expiresAt > now ? previous.failures : 0) + 1;
  const over = failures - policy.threshold;
  const blockedUntil = over >= 0 ? now + Math.min(policy.baseBlockMs * 2 ** Math.min(over, 30), policy.maxBlockMs) : 0;
  return { failures, blockedUntil, expiresAt: Math.max(now + policy.windowMs, blockedUntil) };
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
  /** The session a refresh token (current or already rotated) belongs to, or null. */
  findSessionByRefreshHash(hash: Buffer): Promise<SessionRecord | null>;
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

  /** Inserts a key (state next or verify) as it is. */
  insertSigningKey(key: SigningKeyRecord): Promise<void>;
  /**
   * Makes `kid` the active key: the current active key becomes verify-only with retiredAt=now.
   * Idempotent: returns false when `kid` is already active or is not a next key.
   */
  activateSigningKey(kid: string, now: number): Promise<boolean>;
  /**
   * Disables keys at once through the log (one `key` row each, never expiring), in one
   * transaction; with revokeSessions, every live session of every user is revoked too.
   */
  disableSigningKeys(kids: string[], now: number, revokeSessions: boolean, audit?: AuditInput): Promise<RevocationRow[]>;
  /** Drops a verify-only key from the ring once every token it signed has expired. */
  deleteSigningKey(kid: string): Promise<void>;
  /** A lease named `name` held by `holder` until now+ttlMs; true when acquired (or renewed by the same holder). */
  tryLease(name: string, holder: string, ttlMs: number, now: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;

  /** Sets locked_until and revokes every live session of the user, in one transaction; null: no such user. */
  lockUser(input: LockUserInput): Promise<RevocationRow[] | null>;
  /** Clears locked_until; false: no such user. */
  unlockUser(userId: string, audit?: AuditInput): Promise<boolean>;
  /** Replaces the password hash and revokes sessions (all, or all but one), in one transaction; null: no such user. */
  setPassword(input: SetPasswordInput): Promise<RevocationRow[] | null>;
  /** Revokes every session of the user, then deletes the user, in one transaction; null: no such user. */
  deleteUser(userId: string, now: number, audit?: AuditInput): Promise<RevocationRow[] | null>;

  /** false when the name is taken */
  createClient(client: ClientRecord, audit?: AuditInput): Promise<boolean>;
  findClientById(id: string): Promise<ClientRecord | null>;
  listClients(): Promise<ClientRecord[]>;
  /** false when no client has that name */
  removeClient(name: string, audit?: AuditInput): Promise<boolean>;

  /** The counter's state, or null when absent or expired. */
  getThrottle(key: string, now: number): Promise<ThrottleState | null>;
  /** Atomically counts one failure under the policy (see nextThrottleState), so concurrent failures are all counted. */
  recordThrottleFailure(key: string, now: number, policy: ThrottlePolicy): Promise<ThrottleState>;
  clearThrottle(key: string): Promise<void>;

  appendAudit(event: AuditInput): Promise<void>;
  /** Events with id > afterId, oldest first. */
  listAudit(afterId: number, limit: number): Promise<AuditEvent[]>;

  /**
   * Deletes what can no longer matter: log rows past their expiry, sessions that ended and
   * whose tokens have expired (with their refresh tokens), audit events older than auditBefore.
   */
  pruneExpired(now: number, idleMs: number, auditBefore: number): Promise<PruneResult>;
}
