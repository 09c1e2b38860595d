// The domain façade: every flow a user or operator can start (register, login, refresh,
// logout, session listing and revocation, bearer authentication), each a short pipeline of
// named steps over the store port, the key ring and the in-memory revocation state.
import type { Bus } from '../bus/port.ts';
import type { AuditInput, AuditType, RevocationRow, SessionRecord, Store, UserRecord } from '../store/port.ts';
import type { Clock } from './clock.ts';
import { LatchError } from './errors.ts';
import { KeyRing } from './keyring.ts';
import { PasswordHasher } from './passwords.ts';
import { RefreshTokens } from './refresh-tokens.ts';
import { RevocationSync } from './revocation.ts';
import type { Sealer } from './seal.ts';
import { deriveKey, randomId } from './secrets.ts';
import { AccessTokens, CLOCK_TOLERANCE_S, type AccessClaims } from './tokens.ts';
import type { SigningAlg } from './keyring.ts';
import { usernameKey, validatePassword, validateUsername } from './username.ts';
import { DeviceTokens, LoginThrottle, type ThrottleCounters, type ThrottleSettings } from './throttle.ts';
import { KeyRotation } from './rotation.ts';
import { Administration } from './admin.ts';
import { NO_METRICS, type LatchMetrics } from './metrics.ts';
import type { VerifiedToken } from './tokens.ts';

export interface LatchSettings {
  issuer: string;
  audience: string;
  accessTtl: number;
  refreshTtl: number;
  sessionIdle: number;
  refreshReuseGrace: number;
  signingAlg: SigningAlg;
  signup: 'open' | 'closed';
  stalenessBudget: number;
  pollInterval: number;
  hashConcurrency: number;
  hashQueue: number;
  /** seconds an audit event is kept */
  auditRetention: number;
  /** seconds a lock lasts when no end is given */
  lockDuration: number;
  /** seconds between scheduled key rotations */
  keyRotation: number;
  throttle: ThrottleSettings;
}

export interface LatchDeps {
  store: Store;
  bus: Bus;
  clock: Clock;
  masterKey: Buffer;
  sealer: Sealer;
  settings: LatchSettings;
  /** failure counters shared by every node (Redis); default: the store */
  throttleCounters?: ThrottleCounters;
  metrics?: LatchMetrics;
  onError?: (err: unknown) => void;
}

/** Who is calling, as far as the transport can tell. */
export interface RequestContext {
  ip: string | null;
  userAgent: string | null;
}

/** An authenticated caller, established from a bearer token with no I/O. */
export interface Principal {
  userId: string;
  sessionId: string;
  kid: string;
  claims: AccessClaims;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
  session_id: string;
}

export type LogoutScope = 'session' | 'others' | 'all';

export interface LoginInput {
  username: string;
  password: string;
  /** a name for the device, shown in the sessions list */
  device?: string | null;
  /** the signed device token of an earlier login (cookie or body) */
  deviceToken?: string | null;
}

interface PreparedSession {
  user: UserRecord;
  accessToken: string;
  refresh: { token: string; hash: Buffer };
  deviceToken: string;
  session: Omit<SessionRecord, 'revokedAt'>;
}

export interface LoginResult extends TokenResponse {
  /** proof that this device has logged in to this account: keeps its own throttling allowance */
  device_token: string;
}

export interface PublicUser {
  id: string;
  username: string;
}

const PRUNE_EVERY_MS = 60_000;
/** how often each node reloads the key ring and runs the rotation step (well under the lead time) */
const ROTATION_TICK_MS = 10_000;
const MAX_FIELD = 512;

/** Bounded, printable text from the client (device names, user agents): control characters become U+FFFD. */
const clip = (value: string | null | undefined, max = MAX_FIELD): string | null =>
  value ? value.slice(0, max).replace(/[\u0000-\u001f\u007f]/g, '\ufffd') : null;

export class Latch {
  readonly store: Store;
  readonly keyRing: KeyRing;
  readonly tokens: AccessTokens;
  readonly revocations: RevocationSync;
  readonly passwords: PasswordHasher;
  readonly settings: LatchSettings;
  readonly rotation: KeyRotation;
  readonly admin: Administration;
  private readonly refreshTokens: RefreshTokens;
  private readonly deviceTokens: DeviceTokens;
  private readonly throttle: LoginThrottle;
  readonly clock: Clock;
  readonly metrics: LatchMetrics;
  private pruneTimer: NodeJS.Timeout | null = null;
  private rotationTimer: NodeJS.Timeout | null = null;
  private readonly onError: (err: unknown) => void;

  constructor(deps: LatchDeps) {
    const s = deps.settings;
    this.store = deps.store;
    this.clock = deps.clock;
    this.settings = s;
    this.onError = deps.onError ?? (() => {});
    this.metrics = deps.metrics ?? NO_METRICS;
    this.keyRing = new KeyRing(deps.store, deps.sealer, s.signingAlg, deps.clock);
    this.tokens = new AccessTokens(this.keyRing, { issuer: s.issuer, audience: s.audience, ttl: s.accessTtl, clock: deps.clock });
    this.refreshTokens = new RefreshTokens(deriveKey(deps.masterKey, 'refresh-successor'));
    this.passwords = new PasswordHasher({ concurrency: s.hashConcurrency, maxQueue: s.hashQueue });
    this.deviceTokens = new DeviceTokens(deriveKey(deps.masterKey, 'device-token'));
    this.throttle = new LoginThrottle(deps.throttleCounters ?? deps.store, s.throttle);
    this.rotation = new KeyRotation(deps.store, this.keyRing, deps.sealer, deps.clock, {
      alg: s.signingAlg,
      period: s.keyRotation,
      stalenessBudget: s.stalenessBudget,
      accessTtl: s.accessTtl,
    });
    this.revocations = new RevocationSync({
      store: deps.store,
      bus: deps.bus,
      clock: deps.clock,
      pollIntervalMs: s.pollInterval,
      stalenessBudgetMs: s.stalenessBudget * 1000,
      onApplied: (rows) => this.onRevocationsApplied(rows),
      onError: (err) => {
        this.metrics.backgroundError('store');
        this.onError(err);
      },
      metrics: this.metrics,
    });
    this.admin = new Administration({
      store: deps.store,
      clock: deps.clock,
      passwords: this.passwords,
      revocations: this.revocations,
      rotation: this.rotation,
      throttle: this.throttle,
      lockDuration: s.lockDuration,
      audit: (type, ctx, fields) => this.audit(type, ctx, fields),
    });
  }

  /** Opens the key ring (creating the first key), loads the revocation log, starts polling. */
  async start(): Promise<void> {
    await this.keyRing.ensureActiveKey();
    await this.revocations.start();
    await this.passwords.warmUp();
    await this.rotation.tick();
    this.pruneTimer = setInterval(() => void this.prune().catch(this.onError), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    this.rotationTimer = setInterval(() => void this.rotation.tick().catch(this.onError), ROTATION_TICK_MS);
    this.rotationTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.rotationTimer) clearInterval(this.rotationTimer);
    await this.revocations.stop();
  }

  async prune(): Promise<void> {
    const now = this.clock.now();
    await this.store.pruneExpired(now, this.settings.sessionIdle * 1000, now - this.settings.auditRetention * 1000);
    this.revocations.prune();
  }

  private readonly revocationListeners = new Set<(rows: RevocationRow[]) => void>();

  /**
   * Calls `listener` whenever revocation rows reach this node's memory (its own, or read from
   * the store). Feeds use it as a wake-up and read the store from their own cursor.
   */
  onRevocations(listener: (rows: RevocationRow[]) => void): () => void {
    this.revocationListeners.add(listener);
    return () => this.revocationListeners.delete(listener);
  }

  private onRevocationsApplied(rows: RevocationRow[]): void {
    if (rows.some((r) => r.kind === 'key')) void this.keyRing.load().catch(this.onError);
    for (const listener of this.revocationListeners) {
      try {
        listener(rows);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  private audit(type: AuditType, ctx: RequestContext | null, fields: Partial<Pick<AuditInput, 'actor' | 'subject' | 'detail'>> = {}): AuditInput {
    return {
      type,
      at: this.clock.now(),
      actor: fields.actor ?? null,
      subject: fields.subject ?? null,
      ip: ctx?.ip ?? null,
      userAgent: clip(ctx?.userAgent),
      detail: fields.detail ?? null,
    };
  }

  // ---- accounts ---------------------------------------------------------------------------

  /** Creates an account. Admins are created from the CLI only. */
  async register(input: { username: string; password: string }, ctx: RequestContext | null, options: { admin?: boolean; bypassSignup?: boolean } = {}): Promise<PublicUser> {
    if (this.settings.signup === 'closed' && !options.bypassSignup) throw new LatchError('signup_closed');
    const username = validateUsername(input.username);
    const password = validatePassword(input.password);
    const id = randomId();
    const passwordHash = await this.passwords.hash(password);
    const created = await this.store.createUser(
      { id, username, usernameKey: usernameKey(username), passwordHash, isAdmin: options.admin ?? false, createdAt: this.clock.now() },
      this.audit('user.created', ctx, { actor: id, subject: id, detail: options.admin ? { admin: true } : null }),
    );
    if (!created) throw new LatchError('username_taken');
    return { id: created.id, username: created.username };
  }

  /**
   * Throttle check, then one password hash whether or not the user exists, then the lock:
   * unknown users, wrong passwords and locked accounts seen from unknown devices all get the
   * same answer. A device that has logged in to the account before is told about a lock.
   */
  async login(input: LoginInput, ctx: RequestContext): Promise<LoginResult> {
    const now = this.clock.now();
    const key = usernameKey(input.username);
    const user = await this.store.findUserByKey(key);
    const claimed = this.deviceTokens.verify(input.deviceToken);
    const device = claimed && user && claimed.userId === user.id ? claimed : null;
    const verdict = await this.throttle.check(key, device, ctx.ip, now);
    if (verdict.blocked) {
      this.metrics.login('throttled');
      await this.store.appendAudit(this.audit('login.throttled', ctx, { subject: user?.id ?? null, detail: { scope: verdict.scope, retry_after: verdict.retryAfter } }));
      throw new LatchError('too_many_attempts', { retryAfter: verdict.retryAfter, detail: `Too many failed attempts; try again in ${verdict.retryAfter} s` });
    }
    const verifying = this.passwords.verify(user?.passwordHash ?? null, input.password);
    verifying.catch(() => {}); // awaited below; this only keeps a rejection from going unhandled meanwhile
    // sign while the hash runs on the thread pool: a failed login throws this work away (~40 µs)
    const prepared = user ? this.prepareSession(user, input.device ?? null, ctx, device) : null;
    const ok = await verifying;
    const locked = user !== null && user.lockedUntil !== null && user.lockedUntil > now;
    if (!user || !ok || locked) {
      if (!ok || !device) await this.throttle.recordFailure(key, device, ctx.ip, now);
      const reason = !user ? 'unknown_user' : !ok ? 'wrong_password' : 'locked';
      this.metrics.login(locked && device ? 'locked' : 'failure');
      await this.store.appendAudit(this.audit('login.failed', ctx, { subject: user?.id ?? null, detail: { reason, known_device: device !== null } }));
      // only a device that has logged in to this account before learns that it is locked
      if (locked && device) throw this.lockedError(user.lockedUntil!);
      throw new LatchError('invalid_credentials');
    }
    if (verdict.counted) await this.throttle.recordSuccess(key, device); // no write when there is nothing to reset
    const tokens = await this.openSession(prepared!, ctx);
    this.metrics.login('success');
    return { ...tokens, device_token: prepared!.deviceToken };
  }

  private lockedError(lockedUntil: number): LatchError {
    const until = new Date(lockedUntil).toISOString();
    return new LatchError('account_locked', { detail: `The account is locked until ${until}`, extra: { locked_until: until } });
  }

  /** The CPU part of opening a session: ids, the signed access token, the refresh and device tokens. */
  private prepareSession(user: UserRecord, device: string | null, ctx: RequestContext, knownDevice: { deviceId: string } | null): PreparedSession {
    const now = this.clock.now();
    const sessionId = randomId();
    const access = this.tokens.issue({ sub: user.id, sid: sessionId });
    return {
      user,
      accessToken: access.token,
      refresh: this.refreshTokens.create(),
      deviceToken: this.deviceTokens.issue(user.id, knownDevice?.deviceId).token,
      session: {
        id: sessionId,
        userId: user.id,
        device: clip(device, 100),
        ip: ctx.ip,
        userAgent: clip(ctx.userAgent),
        createdAt: now,
        lastSeenAt: now,
        expiresAt: now + this.settings.refreshTtl * 1000,
        accessExpiresAt: this.accessExpiry(access.claims),
      },
    };
  }

  private async openSession(prepared: PreparedSession, ctx: RequestContext): Promise<TokenResponse> {
    const { user, session } = prepared;
    const result = await this.store.createSession(
      session,
      prepared.refresh.hash,
      this.audit('login.succeeded', ctx, { actor: user.id, subject: user.id, detail: { session_id: session.id } }),
    );
    if (result.kind !== 'created') {
      // a lock or deletion committed between the password check and the session: no session slips through
      await this.store.appendAudit(this.audit('login.failed', ctx, { subject: user.id, detail: { reason: result.kind } }));
      throw new LatchError('invalid_credentials');
    }
    return this.tokenResponse(prepared.accessToken, prepared.refresh.token, session);
  }

  /** When the last access token of a session stops being accepted anywhere: exp plus tolerance. */
  private accessExpiry(claims: AccessClaims): number {
    return (claims.exp + CLOCK_TOLERANCE_S) * 1000;
  }

  private tokenResponse(accessToken: string, refreshToken: string, session: Pick<SessionRecord, 'id' | 'expiresAt' | 'lastSeenAt'>): TokenResponse {
    const now = this.clock.now();
    const refreshEnd = Math.min(session.expiresAt, session.lastSeenAt + this.settings.sessionIdle * 1000);
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: this.settings.accessTtl,
      refresh_token: refreshToken,
      refresh_expires_in: Math.max(0, Math.floor((refreshEnd - now) / 1000)),
      session_id: session.id,
    };
  }

  // ---- sessions ---------------------------------------------------------------------------

  /** Single-use rotation; a replay inside the grace window gets the same successor; other reuse revokes the session. */
  async refresh(refreshToken: string, ctx: RequestContext): Promise<TokenResponse> {
    if (!this.refreshTokens.isWellFormed(refreshToken)) throw new LatchError('invalid_grant');
    const successor = this.refreshTokens.successor(refreshToken);
    const presentedHash = this.refreshTokens.hash(refreshToken);
    // the session id is not known before the lookup: sign after rotation, with the exp we promised
    const now = this.clock.now();
    const iat = Math.floor(now / 1000);
    const expS = iat + this.settings.accessTtl;
    const result = await this.store.rotateRefreshToken(
      {
        presentedHash,
        successorHash: successor.hash,
        now,
        graceMs: this.settings.refreshReuseGrace * 1000,
        idleMs: this.settings.sessionIdle * 1000,
        accessExpiresAt: (expS + CLOCK_TOLERANCE_S) * 1000,
        ip: ctx.ip,
        userAgent: clip(ctx.userAgent),
      },
      this.audit('refresh.reused', ctx, { detail: { reason: 'refresh token presented after rotation' } }),
    );
    this.metrics.refresh(result.kind === 'rotated' ? 'success' : result.kind);
    if (result.kind === 'invalid') throw new LatchError('invalid_grant');
    if (result.kind === 'reused') {
      this.revocations.applyLocal(result.revocations);
      throw new LatchError('refresh_token_reused');
    }
    const access = this.tokens.issue({ sub: result.session.userId, sid: result.session.id, iat });
    return this.tokenResponse(access.token, successor.token, result.session);
  }

  /**
   * Verifies a bearer token: signature, claims, then the in-memory revocation state. No I/O.
   * Fails closed (503) when the revocation state could not be confirmed within the budget.
   */
  authenticate(token: string): Principal {
    const now = this.clock.now();
    const verified = this.tokens.verify(token, now);
    if (!this.revocations.isFresh(now)) throw new LatchError('revocation_state_stale', { retryAfter: 1 });
    const state = this.revocations.state;
    if (state.isSessionRevoked(verified.claims.sid) || state.isKeyDisabled(verified.kid)) {
      throw new LatchError('invalid_token', { cause: 'revoked' });
    }
    return { userId: verified.claims.sub, sessionId: verified.claims.sid, kid: verified.kid, claims: verified.claims };
  }

  async me(principal: Principal): Promise<PublicUser & { session_id: string }> {
    const user = await this.store.findUserById(principal.userId);
    if (!user) throw new LatchError('invalid_token', { cause: 'user gone' });
    return { id: user.id, username: user.username, session_id: principal.sessionId };
  }

  /** Ends the caller's session, every other one, or all that exist at this moment. */
  async logout(principal: Pick<Principal, 'userId' | 'sessionId'>, scope: LogoutScope, ctx: RequestContext): Promise<number> {
    const now = this.clock.now();
    const audit = this.audit('logout', ctx, { actor: principal.userId, subject: principal.userId, detail: { scope, session_id: principal.sessionId } });
    const rows =
      scope === 'session'
        ? await this.store.revokeSession({ sessionId: principal.sessionId, userId: principal.userId, now, audit })
        : await this.store.revokeUserSessions({ userId: principal.userId, now, audit, ...(scope === 'others' ? { exceptSessionId: principal.sessionId } : {}) });
    this.revocations.applyLocal(rows);
    return rows.length;
  }

  /**
   * Logout authenticated by a refresh token alone (cookie mode: the tab's access token may have
   * expired). An unknown or dead token changes nothing; the caller clears its cookie either way.
   */
  async logoutWithRefreshToken(refreshToken: string, scope: LogoutScope, ctx: RequestContext): Promise<number> {
    if (!this.refreshTokens.isWellFormed(refreshToken)) return 0;
    const session = await this.store.findSessionByRefreshHash(this.refreshTokens.hash(refreshToken));
    if (!session || session.revokedAt !== null) return 0;
    const principal = { userId: session.userId, sessionId: session.id };
    return this.logout(principal, scope, ctx);
  }

  async listSessions(principal: Principal): Promise<(SessionRecord & { current: boolean })[]> {
    const sessions = await this.store.listLiveSessions(principal.userId, this.clock.now(), this.settings.sessionIdle * 1000);
    return sessions.map((s) => ({ ...s, current: s.id === principal.sessionId }));
  }

  /** Revokes one of the caller's own sessions; another user's session is "not found". */
  async revokeOwnSession(principal: Principal, sessionId: string, ctx: RequestContext): Promise<void> {
    const rows = await this.store.revokeSession({
      sessionId,
      userId: principal.userId,
      now: this.clock.now(),
      audit: this.audit('session.revoked', ctx, { actor: principal.userId, subject: principal.userId, detail: { session_id: sessionId } }),
    });
    if (rows.length === 0) throw new LatchError('not_found', { detail: 'No such session' });
    this.revocations.applyLocal(rows);
  }

  // ---- operator actions (CLI) ----------------------------------------------------------------

  async findUser(username: string): Promise<UserRecord | null> {
    return this.store.findUserByKey(usernameKey(username));
  }

  async listUserSessions(userId: string): Promise<SessionRecord[]> {
    return this.store.listLiveSessions(userId, this.clock.now(), this.settings.sessionIdle * 1000);
  }

  /** An operator ends any session by id. Returns whether one was revoked. */
  async revokeSessionById(sessionId: string, actor: string): Promise<boolean> {
    const rows = await this.store.revokeSession({
      sessionId,
      now: this.clock.now(),
      audit: this.audit('session.revoked', null, { actor, detail: { session_id: sessionId } }),
    });
    this.revocations.applyLocal(rows);
    return rows.length > 0;
  }

  // ---- OAuth token revocation and introspection (RFC 7009, RFC 7662) -------------------------

  /**
   * A token Latch signed with a key it still has (not disabled), whatever its exp: RFC 7009 lets
   * a holder revoke an expired access token, which still names a session whose refresh token
   * may live on. Null for anything else.
   */
  private verifyIgnoringExpiry(token: string): VerifiedToken | null {
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    if (dot1 < 0 || dot2 < 0) return null;
    let iat: unknown;
    try {
      // read before the signature is checked only to choose the instant to check at (its issue
      // time, when it was not expired); the signature check rejects any payload we did not sign
      iat = (JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString('utf8')) as { iat?: unknown } | null)?.iat;
    } catch {
      return null;
    }
    if (!Number.isSafeInteger(iat)) return null;
    try {
      const verified = this.tokens.verify(token, (iat as number) * 1000);
      return this.revocations.state.isKeyDisabled(verified.kid) ? null : verified;
    } catch {
      return null;
    }
  }

  /**
   * RFC 7009: revoking an access token or a refresh token ends its session (so the log grows
   * no faster than sessions are created). Returns whether a session was ended; a token that is
   * unknown, malformed, already revoked or not ours changes nothing, and the caller answers 200
   * all the same. Dispatches on the token's shape: a JWS has two dots, a refresh token none.
   */
  async revokeToken(token: string, ctx: RequestContext, clientId: string | null): Promise<boolean> {
    let session: { sessionId: string; userId: string; tokenType: 'access_token' | 'refresh_token' } | null = null;
    if (token.includes('.')) {
      const verified = this.verifyIgnoringExpiry(token);
      if (verified) session = { sessionId: verified.claims.sid, userId: verified.claims.sub, tokenType: 'access_token' };
    } else if (this.refreshTokens.isWellFormed(token)) {
      const found = await this.store.findSessionByRefreshHash(this.refreshTokens.hash(token));
      if (found && found.revokedAt === null) session = { sessionId: found.id, userId: found.userId, tokenType: 'refresh_token' };
    }
    if (!session) return false;
    const rows = await this.store.revokeSession({
      sessionId: session.sessionId,
      userId: session.userId,
      now: this.clock.now(),
      audit: this.audit('session.revoked', ctx, {
        actor: session.userId,
        subject: session.userId,
        detail: { session_id: session.sessionId, via: 'oauth_revoke', token_type: session.tokenType, client_id: clientId },
      }),
    });
    this.revocations.applyLocal(rows);
    return rows.length > 0;
  }

  /**
   * RFC 7662: the principal of a live access token (signature, claims and revocation state, as
   * for a bearer call), or null when it is not live. Throws revocation_state_stale when this
   * node cannot tell.
   */
  introspect(token: string): Principal | null {
    try {
      return this.authenticate(token);
    } catch (err) {
      if (err instanceof LatchError && err.code === 'invalid_token') return null;
      throw err;
    }
  }
}
