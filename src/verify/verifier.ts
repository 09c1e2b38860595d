// The verifier: local JWKS verification plus an in-memory copy of the issuer's revocation log,
// kept current by the event stream (catch-up by seq on reconnect, a snapshot when the log's
// epoch changes) and failing closed when it cannot confirm the log within its budget.
import { VerifyError } from './errors.ts';
import { basicAuthorization, IssuerClient, IssuerError, maxAge, parseFeedEvent, REQUEST_TIMEOUT_MS, type FeedEvent, type FetchFunction, type IssuerMetadata } from './http.ts';
import { importKeySet, type PublicKey } from './keys.ts';
import { EventStreamParser, type ServerEvent } from './sse.ts';
import { openStream } from './stream.ts';
import { RevocationSet } from '../core/revocation-set.ts';
import { fingerprint, VerifiedTokenCache } from './cache.ts';
import { CLOCK_TOLERANCE_S, TokenChecker, UnknownKid, type KeyView, type LatchClaims, type VerifiedToken } from './token.ts';

export interface VerifierOptions {
  /** the issuer's URL, exactly as in its tokens' `iss`; metadata, JWKS and the feed are found from it */
  issuer: string;
  /** the `aud` this API accepts */
  audience: string;
  /** a resource-server credential from `latch clients add` */
  client: { id: string; secret: string };
  /** seconds without a confirmed revocation state before every token is refused; default: the issuer's, else 5 */
  stalenessBudgetSeconds?: number;
  /** the longest exp − iat accepted; default: the issuer's published access-token lifetime */
  maxTokenLifetimeSeconds?: number;
  /** verified token strings kept for reuse (admitted on second sighting); 0 turns the cache off; default 10,000 */
  cacheSize?: number;
  /** seconds between JWKS refetches caused by unknown kids (each such token waits for at most one); default 5 */
  unknownKidCooldownSeconds?: number;
  /** seconds createVerifier keeps trying to reach the issuer before it gives up; default 10 */
  startTimeoutSeconds?: number;
  /** the fetch to use (default: the global one) */
  fetch?: FetchFunction;
  /** milliseconds since the epoch (default Date.now): for tests */
  now?: () => number;
  /** background problems: a dropped stream, a failed refetch. The verifier recovers by itself. */
  onError?: (err: Error) => void;
}

/** What a request looked like, for token binding (DPoP) later; ignored today. */
export interface VerifyContext {
  method?: string;
  url?: string;
  headers?: Record<string, string | string[] | undefined> | Headers;
}

export interface VerifierStatus {
  /** the revocation state was confirmed within the budget */
  fresh: boolean;
  logId: string | null;
  /** the log position this verifier has everything up to */
  seq: number;
  /** ms since the epoch of the last confirmation, or null */
  confirmedAt: number | null;
  streamConnected: boolean;
  revokedSessions: number;
  disabledKeys: number;
  /** kids of the keys that verify tokens now */
  keys: string[];
  cachedTokens: number;
  /** snapshots taken (the first one, and one per resynchronisation) */
  snapshots: number;
}

const DEFAULT_BUDGET_S = 5;
const DEFAULT_CACHE = 10_000;
const PRUNE_EVERY_MS = 5_000;
/** No byte for this long (heartbeats come every 1–2 s while the issuer is fresh): reconnect. */
const STREAM_WATCHDOG_MS = 4_000;
const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2_000;
/** JWKS refetch period when the issuer names none, and its bounds. */
const JWKS_DEFAULT_MAX_AGE_S = 60;
const JWKS_MIN_MAX_AGE_S = 10;
const JWKS_MAX_MAX_AGE_S = 3_600;
/** A snapshot whose log changes under it this often in a row is given up on (and retried later). */
const SNAPSHOT_RESTARTS = 3;

/** A wait someone awaits (start-up): it keeps the process alive, unlike the background timers. */
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

class KeySet implements KeyView {
  constructor(private readonly keys: Map<string, PublicKey>) {}
  get(kid: string): PublicKey | undefined {
    return this.keys.get(kid);
  }
  kids(): string[] {
    return [...this.keys.keys()];
  }
  without(kid: string): KeySet {
    const keys = new Map(this.keys);
    keys.delete(kid);
    return new KeySet(keys);
  }
}

export class LatchVerifier {
  private readonly issuer: string;
  private readonly audience: string;
  private readonly now: () => number;
  private readonly onError: (err: Error) => void;
  private readonly http: IssuerClient;
  private readonly authorization: string;
  private readonly fetchFn: FetchFunction;
  private readonly cache: VerifiedTokenCache;
  private readonly unknownKidCooldownMs: number;
  private metadata!: IssuerMetadata;
  private checker!: TokenChecker;
  private budgetMs = DEFAULT_BUDGET_S * 1000;

  private keySet = new KeySet(new Map());
  private keysInFlight: Promise<void> | null = null;
  private lastUnknownKidFetch = -Infinity;
  private jwksTimer: NodeJS.Timeout | null = null;

  private state = new RevocationSet();
  private logId: string | null = null;
  private cursor = 0;
  private confirmedAt = -Infinity;
  private snapshots = 0;

  private closed = false;
  private needsResync = false;
  private streamConnected = false;
  private streamAbort: AbortController | null = null;
  private streamLoop: Promise<void> | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private wakeBackoff: (() => void) | null = null;

  constructor(private readonly options: VerifierOptions) {
    if (typeof options.issuer !== 'string' || !/^https?:\/\//.test(options.issuer)) throw new TypeError('createVerifier: issuer must be an http(s) URL');
    if (typeof options.audience !== 'string' || options.audience.length === 0) throw new TypeError('createVerifier: audience is required');
    if (!options.client || typeof options.client.id !== 'string' || typeof options.client.secret !== 'string' || !options.client.id || !options.client.secret) {
      throw new TypeError('createVerifier: client { id, secret } is required (from `latch clients add <name>`)');
    }
    for (const name of ['stalenessBudgetSeconds', 'maxTokenLifetimeSeconds', 'cacheSize', 'unknownKidCooldownSeconds', 'startTimeoutSeconds'] as const) {
      const v = options[name];
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new TypeError(`createVerifier: ${name} must be a non-negative number`);
    }
    this.issuer = options.issuer.replace(/\/+$/, '');
    this.audience = options.audience;
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? (() => {});
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.authorization = basicAuthorization(options.client.id, options.client.secret);
    this.http = new IssuerClient(this.fetchFn, this.authorization);
    this.cache = new VerifiedTokenCache(options.cacheSize ?? DEFAULT_CACHE);
    this.unknownKidCooldownMs = (options.unknownKidCooldownSeconds ?? 5) * 1000;
  }

  /** Discovery, keys and the first snapshot, retried until the start timeout; then the stream runs in the background. */
  async start(): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutSeconds ?? 10) * 1000;
    let delay = 100;
    for (;;) {
      try {
        await this.bootstrap();
        break;
      } catch (err) {
        if (this.closed) throw new VerifyError('verifier_closed', 'the verifier was closed');
        if (Date.now() + delay >= deadline) throw new VerifyError('issuer_unavailable', `cannot start: ${asError(err).message}`, { cause: err });
        await sleep(delay);
        delay = Math.min(delay * 2, 2_000);
      }
    }
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    this.streamLoop = this.runStream();
  }

  private async bootstrap(): Promise<void> {
    const metadata = await this.http.metadata(this.issuer);
    const maxLifetimeS = this.options.maxTokenLifetimeSeconds ?? metadata.maxLifetimeS;
    if (maxLifetimeS === undefined) throw new IssuerError('the issuer publishes no latch_access_token_max_lifetime: pass maxTokenLifetimeSeconds');
    this.metadata = metadata;
    this.budgetMs = (this.options.stalenessBudgetSeconds ?? metadata.stalenessBudgetS ?? DEFAULT_BUDGET_S) * 1000;
    this.checker = new TokenChecker({ issuer: this.issuer, audience: this.audience, maxLifetimeS }, () => this.keySet);
    await this.resync();
  }

  // ---- verification -------------------------------------------------------------------------

  /** Verifies an access token: signature, claims, revocation state. Rejects with a VerifyError. */
  verify(token: string, context?: VerifyContext): Promise<LatchClaims> {
    try {
      return Promise.resolve(this.check(token, context));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * verify() without a promise when none is needed (every call but one whose kid needs a JWKS
   * refetch): the adapters use it, so a request pays no promise and no extra turn. Throws a
   * VerifyError, or returns a promise that rejects with one.
   */
  check(token: string, _context?: VerifyContext): LatchClaims | Promise<LatchClaims> {
    try {
      return this.verifyNow(token);
    } catch (err) {
      if (err instanceof UnknownKid) return this.verifyAfterRefetch(token, err.kid);
      throw err;
    }
  }

  /** The whole check with no I/O; throws UnknownKid when a JWKS refetch might still find the key. */
  private verifyNow(token: string): LatchClaims {
    if (this.closed) throw new VerifyError('verifier_closed', 'the verifier was closed');
    if (typeof token !== 'string') throw new VerifyError('token_malformed', 'the token is not a string');
    const now = this.now();
    const fp = fingerprint(token);
    const cached = this.cache.get(token, fp);
    let verified: VerifiedToken;
    if (cached !== undefined) {
      if (Math.floor(now / 1000) >= cached.claims.exp + CLOCK_TOLERANCE_S) {
        this.cache.delete(token);
        throw new VerifyError('token_expired', 'the token has expired');
      }
      verified = cached;
    } else {
      verified = this.checker.check(token, now);
    }
    if (now - this.confirmedAt > this.budgetMs) throw new VerifyError('revocation_state_stale', 'the revocation state could not be confirmed within the staleness budget');
    if (this.state.isSessionRevoked(verified.claims.sid)) throw new VerifyError('token_revoked', 'the session of this token was revoked');
    if (this.state.isKeyDisabled(verified.kid)) throw new VerifyError('key_disabled', 'the key that signed this token was disabled');
    if (cached === undefined) this.cache.admit(token, fp, verified);
    return verified.claims;
  }

  private async verifyAfterRefetch(token: string, kid: string): Promise<LatchClaims> {
    if (this.state.isKeyDisabled(kid)) throw new VerifyError('key_disabled', 'the key that signed this token was disabled');
    const now = this.now();
    if (this.keysInFlight === null && now - this.lastUnknownKidFetch < this.unknownKidCooldownMs) throw new VerifyError('unknown_key', 'no key in the key set has this kid');
    if (this.keysInFlight === null) this.lastUnknownKidFetch = now;
    try {
      await this.refreshKeys();
    } catch (err) {
      this.onError(asError(err));
    }
    try {
      return this.verifyNow(token);
    } catch (err) {
      if (err instanceof UnknownKid) throw new VerifyError('unknown_key', 'no key in the key set has this kid');
      throw err;
    }
  }

  status(): VerifierStatus {
    const now = this.now();
    return {
      fresh: !this.closed && now - this.confirmedAt <= this.budgetMs,
      logId: this.logId,
      seq: this.cursor,
      confirmedAt: Number.isFinite(this.confirmedAt) ? this.confirmedAt : null,
      streamConnected: this.streamConnected,
      revokedSessions: this.state.sessionCount,
      disabledKeys: this.state.disabledKeys.size,
      keys: this.keySet.kids(),
      cachedTokens: this.cache.size,
      snapshots: this.snapshots,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.jwksTimer) clearTimeout(this.jwksTimer);
    this.streamAbort?.abort();
    this.wakeBackoff?.();
    await this.streamLoop?.catch(() => {});
    this.cache.clear();
  }

  private prune(): void {
    const now = this.now();
    this.state.prune(now);
    this.cache.prune(Math.floor(now / 1000), CLOCK_TOLERANCE_S);
  }

  // ---- keys ---------------------------------------------------------------------------------

  /** Fetches and imports the JWKS (coalesced with a fetch in flight); disabled kids are left out. */
  private refreshKeys(): Promise<void> {
    this.keysInFlight ??= (async () => {
      try {
        const { body, headers } = await this.http.getJson(this.metadata.jwksUri, { authenticated: false });
        const { keys } = importKeySet(body, this.state.disabledKeys);
        this.keySet = new KeySet(keys);
        this.checker.keysChanged();
        this.scheduleJwks(maxAge(headers));
      } finally {
        this.keysInFlight = null;
      }
    })();
    return this.keysInFlight;
  }

  /** The issuer publishes a next key well ahead of signing with it: refetching every max-age meets it first. */
  private scheduleJwks(maxAgeS: number | undefined): void {
    if (this.closed) return;
    if (this.jwksTimer) clearTimeout(this.jwksTimer);
    const seconds = Math.min(JWKS_MAX_MAX_AGE_S, Math.max(JWKS_MIN_MAX_AGE_S, maxAgeS ?? JWKS_DEFAULT_MAX_AGE_S));
    this.jwksTimer = setTimeout(() => void this.refreshKeys().catch((err: unknown) => this.onError(asError(err))), seconds * 1000);
    this.jwksTimer.unref();
  }

  private disableKey(kid: string): void {
    this.state.disableKey(kid);
    // out of the key set at once, before the refetch answers
    this.keySet = this.keySet.without(kid);
    this.checker.keysChanged();
    void this.refreshKeys().catch((err: unknown) => this.onError(asError(err)));
  }

  // ---- revocation state ---------------------------------------------------------------------

  /**
   * Reads the whole live log (GET after=0, paging) into a new state and swaps it in, then
   * refetches the keys. Disabled kids carry over: a key is never enabled again, even by a
   * store restored from before it was disabled.
   */
  private async resync(): Promise<void> {
    const endpoint = this.metadata.revocationsEndpoint;
    let restarts = 0;
    let next = new RevocationSet();
    let after = 0;
    let logId: string | null = null;
    let pageStartedAt = this.now();
    for (;;) {
      pageStartedAt = this.now();
      const page = await this.http.feedPage(endpoint, after);
      if ((logId !== null && page.log_id !== logId) || page.last_seq < after) {
        // the log changed epoch under the snapshot: start over
        if (++restarts > SNAPSHOT_RESTARTS) throw new IssuerError('the revocation log keeps changing under the snapshot');
        next = new RevocationSet();
        after = 0;
        logId = null;
        continue;
      }
      logId = page.log_id;
      const now = this.now();
      for (const event of page.events) this.applyTo(next, event, now);
      if (!page.more) {
        after = Math.max(after, page.last_seq);
        break;
      }
      const last = page.events[page.events.length - 1];
      if (!last || last.seq <= after) throw new IssuerError('the revocation feed said more but sent nothing new');
      after = last.seq;
    }
    for (const kid of this.state.disabledKeys) next.disableKey(kid);
    this.state = next;
    this.logId = logId;
    this.cursor = after;
    this.confirmedAt = pageStartedAt;
    this.snapshots += 1;
    this.needsResync = false;
    this.cache.clear();
    await this.refreshKeys();
  }

  private applyTo(state: RevocationSet, event: FeedEvent, nowMs: number): void {
    if (event.kind === 'key') state.disableKey(event.id);
    else state.revokeSession(event.id, event.expires_at ?? 0, nowMs);
  }

  // ---- the event stream ---------------------------------------------------------------------

  private async runStream(): Promise<void> {
    let delay = RECONNECT_MIN_MS;
    while (!this.closed) {
      let confirmed = false;
      try {
        if (this.needsResync) await this.resync();
        confirmed = await this.streamOnce();
      } catch (err) {
        if (!this.closed) this.onError(asError(err));
      }
      this.streamConnected = false;
      if (this.closed) break;
      if (this.needsResync) continue;
      delay = confirmed ? RECONNECT_MIN_MS : Math.min(delay * 2, RECONNECT_MAX_MS);
      // jitter, so verifiers cut off together do not all come back in the same millisecond
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay * (0.5 + Math.random() / 2));
        timer.unref();
        this.wakeBackoff = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeBackoff = null;
    }
  }

  /** One connection, until it ends, breaks, goes silent or asks for a resync. Returns whether a heartbeat arrived. */
  private async streamOnce(): Promise<boolean> {
    const controller = new AbortController();
    this.streamAbort = controller;
    const url = new URL(this.metadata.streamEndpoint);
    url.searchParams.set('after', String(this.cursor));
    if (this.logId !== null) url.searchParams.set('log_id', this.logId);
    let lastByteAt = Date.now();
    let confirmed = false;
    const connectTimer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const watchdog = setInterval(() => {
      if (Date.now() - lastByteAt > STREAM_WATCHDOG_MS) controller.abort();
    }, 1_000);
    watchdog.unref();
    try {
      const headers = { accept: 'text/event-stream', authorization: this.authorization, 'last-event-id': String(this.cursor) };
      const stream = await openStream(url, headers, controller.signal, this.options.fetch ?? null);
      clearTimeout(connectTimer);
      if (stream.status !== 200 || !stream.contentType.startsWith('text/event-stream')) {
        controller.abort();
        throw new IssuerError(`the revocation stream answered ${stream.status}${stream.status === 401 ? ' (is the client id and secret right?)' : ''}`);
      }
      lastByteAt = Date.now();
      const parser = new EventStreamParser((event) => {
        if (this.onStreamEvent(event)) confirmed = true;
        if (this.needsResync) controller.abort();
      });
      for await (const text of stream.chunks) {
        lastByteAt = Date.now();
        parser.push(text);
        if (controller.signal.aborted) break;
      }
    } catch (err) {
      // an abort is ours (close, watchdog, resync): not worth reporting
      if (!controller.signal.aborted) throw err;
    } finally {
      clearTimeout(connectTimer);
      clearInterval(watchdog);
      controller.abort();
      if (this.streamAbort === controller) this.streamAbort = null;
    }
    return confirmed;
  }

  /** Applies one stream event; returns true for a heartbeat that confirmed the state. */
  private onStreamEvent(event: ServerEvent): boolean {
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      throw new IssuerError(`the revocation stream sent a ${event.event} event that is not JSON`);
    }
    switch (event.event) {
      case 'revocation': {
        const row = parseFeedEvent(data);
        if (row.kind === 'key') this.disableKey(row.id);
        else this.state.revokeSession(row.id, row.expires_at ?? 0, this.now());
        if (row.seq > this.cursor) this.cursor = row.seq;
        return false;
      }
      case 'heartbeat': {
        const beat = data as { log_id?: unknown; last_seq?: unknown };
        if (typeof beat.log_id !== 'string' || !Number.isSafeInteger(beat.last_seq)) throw new IssuerError('the revocation stream sent a malformed heartbeat');
        const lastSeq = beat.last_seq as number;
        if (beat.log_id !== this.logId || lastSeq < this.cursor) {
          // another epoch, or a log behind us: what we hold may not match it
          this.needsResync = true;
          return false;
        }
        // every live row up to last_seq came before this heartbeat on this stream
        this.cursor = lastSeq;
        this.confirmedAt = this.now();
        this.streamConnected = true;
        return true;
      }
      case 'resync':
        this.needsResync = true;
        return false;
      default:
        // unknown events are for newer verifiers
        return false;
    }
  }
}
