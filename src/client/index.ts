// latch/client: log in, keep the access token fresh, log out for real. Runs in browsers and in
// Node 20+, imports nothing from the server. The access token lives only in this object's
// memory; in a browser the refresh token lives only in Latch's HttpOnly cookie.
import { ChannelMutex, type ChannelLike, type LockManagerLike, type TabMessage, type Timers } from './cross-tab.ts';
import { LatchClientError, problemFrom } from './errors.ts';

export { LatchClientError, type ClientErrorCode } from './errors.ts';
export type { ChannelLike, LockManagerLike, TabMessage, Timers } from './cross-tab.ts';

export type LogoutScope = 'session' | 'others' | 'all';

export interface User {
  id: string;
  username: string;
}

export interface Session {
  id: string;
  device: string | null;
  ip: string | null;
  userAgent: string | null;
  /** ISO 8601 */
  createdAt: string;
  /** ISO 8601 */
  lastSeenAt: string;
  /** the session of this client */
  current: boolean;
}

export type AuthStatus = 'unknown' | 'logged_in' | 'logged_out';

/** Why the state last changed, so a UI can say it in words. */
export type ChangeReason =
  | 'start'
  | 'login'
  | 'restored'
  | 'refreshed'
  /** a silent refresh failed for a passing reason (network, 5xx); it is retried at nextRefreshAt */
  | 'refresh_failed'
  | 'logout'
  /** another tab of this browser logged out */
  | 'other_tab'
  /** the server no longer knows the session: revoked from another device, reused, expired */
  | 'session_ended'
  /** there was no session to resume */
  | 'no_session';

export interface AuthState {
  readonly status: AuthStatus;
  readonly user: User | null;
  readonly sessionId: string | null;
  /** when the access token expires, ms on this client's clock */
  readonly expiresAt: number | null;
  /** when the next silent refresh is due, ms on this client's clock */
  readonly nextRefreshAt: number | null;
  readonly reason: ChangeReason;
  /** a logout could not reach the server; it is sent again before anything else */
  readonly logoutPending: boolean;
}

export interface LogoutResult {
  /**
   * done: the server ended it. already_ended: the server had nothing left to end.
   * pending: the server could not be reached; it is told on the next load (or when back online).
   * refused: the server said no (see error); this client is logged out regardless.
   */
  server: 'done' | 'already_ended' | 'pending' | 'refused';
  error?: LatchClientError;
}

/** Where the pending-logout flag is kept: localStorage in a browser. Never holds a token. */
export interface MarkerStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface ClientOptions {
  /** the Latch server, e.g. "https://auth.example.com"; "" for the page's own origin */
  baseUrl: string;
  /** refresh this long before the access token expires (default 20 s) */
  refreshLeewaySeconds?: number;
  /**
   * cookie: the refresh token stays in Latch's HttpOnly cookie (default in a browser).
   * memory: the refresh token is kept in this object (default in Node; lost when it is).
   */
  mode?: 'cookie' | 'memory';
  fetch?: (input: Request | string | URL, init?: RequestInit) => Promise<Response>;
  /** null turns the pending-logout marker off */
  storage?: MarkerStorage | null;
  /** Web Locks; null falls back to a BroadcastChannel mutex */
  locks?: LockManagerLike | null;
  channel?: ChannelLike | null;
  now?: () => number;
  timers?: Timers;
}

export interface LatchClient {
  readonly state: AuthState;
  /** On page load: sends a pending logout first, else resumes the session from the cookie. */
  resume(): Promise<AuthState>;
  register(input: { username: string; password: string }): Promise<User>;
  login(input: { username: string; password: string; device?: string }): Promise<AuthState>;
  /** Clears this client at once, tells the other tabs, then tells the server. */
  logout(options?: { scope?: LogoutScope }): Promise<LogoutResult>;
  /** Refreshes now; concurrent callers (and tabs) share one refresh. */
  refresh(): Promise<void>;
  sessions(): Promise<Session[]>;
  revokeSession(id: string): Promise<void>;
  changePassword(input: { currentPassword: string; newPassword: string }): Promise<void>;
  /** fetch with the bearer token; on a 401 it refreshes once and tries again. */
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
  onChange(listener: (state: AuthState) => void): () => void;
  /** Stops timers and listeners (tests, Node). */
  close(): void;
}

interface TokenBody {
  access_token: string;
  expires_in: number;
  session_id: string;
  refresh_token?: string;
  device_token?: string;
}

interface WireSession {
  id: string;
  device: string | null;
  ip: string | null;
  user_agent: string | null;
  created_at: string;
  last_seen_at: string;
  current: boolean;
}

export const LOGOUT_MARKER = 'latch.logout_pending';
const DEFAULT_LEEWAY_S = 20;
// a refresh is never scheduled sooner than this after the last one, however short the token
const MIN_DELAY_MS = 200;
const MAX_RETRY_MS = 30_000;

const defaultTimers: Timers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    // in Node a pending refresh must not keep a finished script alive
    (handle as { unref?: () => void }).unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

function defaultStorage(): MarkerStorage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    // storage disabled (privacy settings, sandboxed frame): the marker is simply not kept
    return null;
  }
}

export function createClient(options: ClientOptions): LatchClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  const win = typeof window === 'object' && typeof document === 'object' ? window : null;
  const mode = options.mode ?? (win ? 'cookie' : 'memory');
  const cookieMode = mode === 'cookie';
  const leewayMs = (options.refreshLeewaySeconds ?? DEFAULT_LEEWAY_S) * 1000;
  const send = options.fetch ?? ((input, init) => fetch(input, init));
  const now = options.now ?? (() => Date.now());
  const timers = options.timers ?? defaultTimers;
  const storage = options.storage !== undefined ? options.storage : cookieMode ? defaultStorage() : null;
  const navigatorLocks = typeof navigator === 'object' ? (navigator as { locks?: LockManagerLike }).locks : undefined;
  const locks = options.locks !== undefined ? options.locks : cookieMode ? (navigatorLocks ?? null) : null;
  // only cookie mode shares anything between tabs: the cookie
  const channel =
    options.channel !== undefined ? options.channel : cookieMode && typeof BroadcastChannel === 'function' ? (new BroadcastChannel(`latch:${base}`) as ChannelLike) : null;
  const tabId = `${now().toString(36)}.${Math.random().toString(36).slice(2)}`;
  const post = (message: TabMessage): void => channel?.postMessage(message);
  const mutex = channel && !locks ? new ChannelMutex(tabId, post, timers, now) : null;

  let accessToken: string | null = null;
  let refreshToken: string | null = null;
  let deviceToken: string | null = null;
  let sessionId: string | null = null;
  let user: User | null = null;
  let status: AuthStatus = 'unknown';
  let obtainedAt = 0;
  let expiresAt: number | null = null;
  let nextRefreshAt: number | null = null;
  let timer: unknown = null;
  let failures = 0;
  // bumped whenever the session is left: an answer that arrives later belongs to no one
  let generation = 0;
  let inFlight: Promise<void> | null = null;
  const listeners = new Set<(state: AuthState) => void>();
  let state = snapshot('start');

  function snapshot(reason: ChangeReason): AuthState {
    return Object.freeze({ status, user, sessionId, expiresAt, nextRefreshAt, reason, logoutPending: pendingScope() !== null });
  }

  function emit(reason: ChangeReason): void {
    state = snapshot(reason);
    for (const listener of listeners) {
      try {
        listener(state);
      } catch (err) {
        // one broken listener must not stop the others or the SDK's own bookkeeping
        console.error(err);
      }
    }
  }

  function pendingScope(): string | null {
    try {
      return storage?.getItem(LOGOUT_MARKER) ?? null;
    } catch {
      return null;
    }
  }

  function setMarker(scope: LogoutScope | null): void {
    try {
      if (scope) storage?.setItem(LOGOUT_MARKER, scope);
      else storage?.removeItem(LOGOUT_MARKER);
    } catch {
      // a full or disabled storage loses the marker; logging out locally still happened
    }
  }

  async function call(path: string, init: { method?: string; body?: unknown; token?: string | null; cookie?: boolean } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    try {
      return await send(base + path, {
        method: init.method ?? 'GET',
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        // the refresh cookie must travel to another origin too (LATCH_CORS_ORIGINS)
        credentials: init.cookie ? 'include' : 'same-origin',
      });
    } catch (err) {
      throw new LatchClientError('network_error', 0, 'The server could not be reached', { cause: err });
    }
  }

  async function ok(res: Response): Promise<Response> {
    if (!res.ok) throw await problemFrom(res);
    return res;
  }

  // ---- tokens and the refresh schedule ----------------------------------------------------

  function clearTimer(): void {
    if (timer !== null) timers.clearTimeout(timer);
    timer = null;
  }

  function arm(at: number): void {
    clearTimer();
    nextRefreshAt = at;
    timer = timers.setTimeout(() => {
      timer = null;
      refresh().catch((err: unknown) => retryLater(err));
    }, Math.max(0, at - now()));
  }

  function adopt(body: TokenBody, startedAt: number): void {
    accessToken = body.access_token;
    if (!cookieMode && body.refresh_token) refreshToken = body.refresh_token;
    if (!cookieMode && body.device_token) deviceToken = body.device_token;
    sessionId = body.session_id;
    // measured from when the request left: the server's clock started no earlier
    obtainedAt = startedAt;
    expiresAt = startedAt + body.expires_in * 1000;
    status = 'logged_in';
    failures = 0;
    const lifetime = expiresAt - obtainedAt;
    // leeway before expiry, but never more often than four times per lifetime
    arm(obtainedAt + Math.max(lifetime - leewayMs, lifetime / 4, MIN_DELAY_MS));
  }

  function retryLater(err: unknown): void {
    if (status !== 'logged_in') return;
    failures++;
    const hinted = err instanceof LatchClientError && err.retryAfter ? err.retryAfter * 1000 : 0;
    arm(now() + Math.max(hinted, Math.min(1000 * 2 ** (failures - 1), MAX_RETRY_MS)));
    emit('refresh_failed');
  }

  function leave(reason: ChangeReason): void {
    generation++;
    clearTimer();
    accessToken = refreshToken = sessionId = expiresAt = nextRefreshAt = user = null;
    status = 'logged_out';
    emit(reason);
  }

  function withRefreshLock(task: () => Promise<void>): Promise<void> {
    if (locks) return locks.request(`latch-refresh:${base}`, task);
    return mutex ? mutex.run(task) : task();
  }

  function refresh(): Promise<void> {
    const gen = generation;
    inFlight ??= withRefreshLock(() => refreshOnce(gen)).finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  async function refreshOnce(gen: number): Promise<void> {
    if (gen !== generation) return;
    // a logout that never reached the server goes first, and the session is not resumed
    if (pendingScope() !== null) {
      await sendPendingLogout();
      if (status !== 'logged_out') leave('logout');
      return;
    }
    if (!cookieMode && refreshToken === null) throw new LatchClientError('not_logged_in', 0, 'There is no session to refresh');
    const startedAt = now();
    const res = await call('/v1/refresh', { method: 'POST', cookie: cookieMode, ...(cookieMode ? {} : { body: { refresh_token: refreshToken } }) });
    // the session was left while this was out: its answer, good or bad, concerns no one
    if (gen !== generation) return;
    if (res.ok) {
      const body = (await res.json()) as TokenBody;
      if (gen !== generation) return;
      adopt(body, startedAt);
      emit('refreshed');
      return;
    }
    const err = await problemFrom(res);
    if (res.status === 400 || res.status === 401) {
      const wasIn = status === 'logged_in';
      leave(wasIn ? 'session_ended' : 'no_session');
      if (wasIn) post({ t: 'ended' });
    }
    throw err;
  }

  /** Before using the token: a timer throttled in a background tab may be overdue. */
  async function currentToken(): Promise<string | null> {
    if (status === 'logged_in' && nextRefreshAt !== null && now() >= nextRefreshAt) await refresh().catch(() => {});
    return accessToken;
  }

  // ---- logout -------------------------------------------------------------------------------

  /** Sends the pending logout, if any. Returns whether nothing is left pending. */
  async function sendPendingLogout(): Promise<boolean> {
    const scope = pendingScope();
    if (scope === null) return true;
    try {
      const res = await call('/v1/logout', { method: 'POST', body: { scope: scope === 'all' ? 'all' : 'session' }, cookie: true });
      if (res.status >= 500 || res.status === 429) return false;
    } catch {
      return false;
    }
    setMarker(null);
    emit(state.reason);
    return true;
  }

  async function logout(opts: { scope?: LogoutScope } = {}): Promise<LogoutResult> {
    const scope = opts.scope ?? 'session';
    if (scope === 'others') {
      await ok(await api('/v1/logout', { method: 'POST', body: { scope } }));
      return { server: 'done' };
    }
    // without a cookie the bearer token is the only proof: make sure it is a live one
    if (!cookieMode && expiresAt !== null && now() >= expiresAt) await refresh().catch(() => {});
    const token = accessToken;
    leave('logout');
    post({ t: 'logout' });
    let res: Response;
    try {
      res = await call('/v1/logout', { method: 'POST', body: { scope }, token, cookie: cookieMode });
    } catch (err) {
      return unreachable(scope, err as LatchClientError);
    }
    if (res.ok) return { server: 'done' };
    const err = await problemFrom(res);
    if (res.status === 401) return { server: 'already_ended' };
    if (res.status >= 500 || res.status === 429) return unreachable(scope, err);
    return { server: 'refused', error: err };
  }

  function unreachable(scope: LogoutScope, error: LatchClientError): LogoutResult {
    // the HttpOnly cookie cannot be removed from script: remember to tell the server
    if (cookieMode && storage) {
      setMarker(scope);
      emit('logout');
    }
    return { server: 'pending', error };
  }

  // ---- the authenticated fetch ----------------------------------------------------------------

  async function authFetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    const target = typeof input === 'string' && input.startsWith('/') ? base + input : input;
    const attempt = (token: string | null): Promise<Response> => {
      // a new Request each time, so that a body can be sent again
      const request = new Request(target instanceof Request ? target.clone() : target, init);
      if (token) request.headers.set('authorization', `Bearer ${token}`);
      return send(request);
    };
    const token = await currentToken();
    const res = await attempt(token);
    if (res.status !== 401 || status !== 'logged_in') return res;
    // another caller may have refreshed while this request was out
    if (accessToken === token) await refresh().catch(() => {});
    if (accessToken === null || accessToken === token) return res;
    return attempt(accessToken);
  }

  async function api(path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
    try {
      return await authFetch(path, {
        method: init.method ?? 'GET',
        ...(init.body !== undefined ? { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } } : {}),
      });
    } catch (err) {
      throw new LatchClientError('network_error', 0, 'The server could not be reached', { cause: err });
    }
  }

  async function loadUser(): Promise<void> {
    const gen = generation;
    const body = (await (await ok(await api('/v1/me'))).json()) as User;
    if (gen === generation) user = { id: body.id, username: body.username };
  }

  // ---- between tabs and with the page ---------------------------------------------------------

  channel?.addEventListener('message', (event) => {
    const message = event.data as TabMessage | null;
    if (!message || typeof message !== 'object') return;
    mutex?.onMessage(message);
    if ((message.t === 'logout' || message.t === 'ended') && status !== 'logged_out') leave(message.t === 'logout' ? 'other_tab' : 'session_ended');
    // another tab logged in: this one picks the session up from the shared cookie
    if (message.t === 'login') void resume().catch(() => {});
  });

  const onOnline = (): void => void sendPendingLogout();
  const onVisible = (): void => void (document.visibilityState === 'visible' ? currentToken() : null);
  win?.addEventListener('online', onOnline);
  win?.document.addEventListener('visibilitychange', onVisible);

  async function resume(): Promise<AuthState> {
    if (pendingScope() !== null) {
      await sendPendingLogout();
      if (status !== 'logged_out') leave('logout');
      return state;
    }
    if (!cookieMode) {
      if (status === 'unknown') leave('no_session');
      return state;
    }
    try {
      await refresh();
    } catch (err) {
      // no cookie, or a dead one: simply not logged in
      if (err instanceof LatchClientError && (err.status === 400 || err.status === 401)) return state;
      throw err;
    }
    if (status === 'logged_in') {
      await loadUser();
      emit('restored');
    }
    return state;
  }

  return {
    get state() {
      return state;
    },
    resume,
    async register(input) {
      const body = (await (await ok(await call('/v1/users', { method: 'POST', body: { username: input.username, password: input.password } }))).json()) as User;
      return { id: body.id, username: body.username };
    },
    async login(input) {
      // an old session this browser could not end yet is ended before a new one starts
      await sendPendingLogout();
      const startedAt = now();
      const body = {
        username: input.username,
        password: input.password,
        ...(input.device ? { device: input.device } : {}),
        ...(cookieMode ? { cookie: true } : deviceToken ? { device_token: deviceToken } : {}),
      };
      const tokens = (await (await ok(await call('/v1/login', { method: 'POST', body, cookie: true }))).json()) as TokenBody;
      // the new cookie replaced the one the marker was about
      setMarker(null);
      generation++;
      adopt(tokens, startedAt);
      await loadUser().catch(() => {});
      emit('login');
      post({ t: 'login' });
      return state;
    },
    logout,
    refresh,
    async sessions() {
      const body = (await (await ok(await api('/v1/sessions'))).json()) as { sessions: WireSession[] };
      return body.sessions.map((s) => ({ id: s.id, device: s.device, ip: s.ip, userAgent: s.user_agent, createdAt: s.created_at, lastSeenAt: s.last_seen_at, current: s.current }));
    },
    async revokeSession(id) {
      await ok(await api(`/v1/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }));
      if (id === sessionId) {
        leave('logout');
        post({ t: 'logout' });
      }
    },
    async changePassword(input) {
      await ok(await api('/v1/password', { method: 'POST', body: { current_password: input.currentPassword, new_password: input.newPassword } }));
    },
    fetch: authFetch,
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    close() {
      clearTimer();
      listeners.clear();
      channel?.close();
      win?.removeEventListener('online', onOnline);
      win?.document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
