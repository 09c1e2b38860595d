// Test doubles for the SDK's unit tests: a clock whose timers run only when told, a small
// in-memory Latch behind a fake fetch (with one browser cookie jar shared by its "tabs"),
// Web Locks, a BroadcastChannel hub and a storage that can be inspected.
import type { ChannelLike, LockManagerLike, MarkerStorage, TabMessage, Timers } from '../src/client/index.ts';

/** Lets pending promise chains and setImmediate callbacks run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock {
  private t = Date.UTC(2026, 0, 1);
  private nextId = 1;
  private readonly queue = new Map<number, { at: number; fn: () => void }>();

  readonly now = (): number => this.t;
  readonly timers: Timers = {
    setTimeout: (fn, ms) => {
      const id = this.nextId++;
      this.queue.set(id, { at: this.t + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout: (handle) => void this.queue.delete(handle as number),
  };

  /**
   * Moves time forward, running the timers that fall due at each moment. Timers due at the
   * same moment fire back to back, before any message moves: tabs are separate processes, so
   * nothing orders one tab's timer before the other's.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let at = Infinity;
      for (const entry of this.queue.values()) if (entry.at <= end) at = Math.min(at, entry.at);
      if (at === Infinity) break;
      this.t = at;
      const due = [...this.queue].filter(([, entry]) => entry.at === at);
      for (const [id] of due) this.queue.delete(id);
      for (const [, entry] of due) entry.fn();
    }
    this.t = end;
    await settle();
  }

  /** Moves time without firing timers, as a throttled background tab experiences it. */
  jump(ms: number): void {
    this.t += ms;
  }

  get pending(): number {
    return this.queue.size;
  }
}

interface FakeSession {
  id: string;
  userId: string;
  refresh: string;
  revoked: boolean;
}

const problem = (status: number, code: string, extra: Record<string, unknown> = {}): Response =>
  new Response(JSON.stringify({ type: `https://latch.dev/errors/${code}`, title: code, status, code, ...extra }), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  });

const ok = (status: number, body?: unknown): Response =>
  body === undefined ? new Response(null, { status }) : new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

/** Enough of Latch for the SDK: rotation with reuse detection and no grace, so any overlap shows. */
export class FakeLatch {
  readonly base = 'http://latch.test';
  ttl = 300;
  /** the browser's refresh cookie, shared by every tab of that browser */
  jar: string | null = null;
  offline = false;
  /** status codes the next refreshes answer with, instead of refreshing */
  refreshFailures: number[] = [];
  passwordEndpoint = true;
  /** every request, as "METHOD /path" */
  readonly log: string[] = [];
  /** the bearer token of the last request that carried one */
  lastBearer: string | null = null;
  inFlightRefreshes = 0;
  maxInFlightRefreshes = 0;
  reuseDetected = 0;
  /** awaited inside each refresh, so that unserialised refreshes overlap */
  refreshDelay: () => Promise<void> = () => settle(3);
  private n = 0;
  private readonly sessions = new Map<string, FakeSession>();
  private readonly access = new Map<string, { sid: string; exp: number }>();
  private readonly retired = new Map<string, string>();

  constructor(private readonly clock: FakeClock) {}

  readonly fetch = async (input: Request | string | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname}`;
    this.log.push(route);
    if (this.offline) throw new TypeError('fetch failed');
    const text = await request.text();
    const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
    const bearer = request.headers.get('authorization')?.replace(/^Bearer /, '') ?? null;
    if (bearer) this.lastBearer = bearer;
    const principal = bearer ? this.principal(bearer) : null;
    if (route === 'POST /v1/users') return ok(201, { id: `u-${String(body.username)}`, username: body.username });
    if (route === 'POST /v1/login') return this.login(body);
    if (route === 'POST /v1/refresh') return this.refresh(body);
    if (route === 'POST /v1/logout') return this.logout(principal, body);
    if (!principal) return problem(401, 'invalid_token');
    if (route === 'GET /v1/me') return ok(200, { id: principal.userId, username: principal.userId.slice(2), session_id: principal.id });
    if (route === 'GET /v1/sessions') {
      const live = [...this.sessions.values()].filter((s) => !s.revoked && s.userId === principal.userId);
      const at = new Date(this.clock.now()).toISOString();
      return ok(200, { sessions: live.map((s) => ({ id: s.id, device: null, ip: '127.0.0.1', user_agent: 'test', created_at: at, last_seen_at: at, current: s.id === principal.id })) });
    }
    if (request.method === 'DELETE' && url.pathname.startsWith('/v1/sessions/')) {
      const target = this.sessions.get(decodeURIComponent(url.pathname.slice('/v1/sessions/'.length)));
      if (!target || target.userId !== principal.userId || target.revoked) return problem(404, 'not_found');
      target.revoked = true;
      return ok(204);
    }
    if (route === 'POST /v1/password') return this.passwordEndpoint ? ok(204) : problem(404, 'not_found');
    if (route === 'GET /api/data') return ok(200, { data: 'secret' });
    return problem(404, 'not_found');
  };

  /** Ends a session as another device or an administrator would. */
  revoke(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (s) s.revoked = true;
  }

  /** Refuses one access token from now on, as after an emergency key rotation. */
  forget(accessToken: string): void {
    this.access.delete(accessToken);
  }

  isLive(accessToken: string): boolean {
    return this.principal(accessToken) !== null;
  }

  get liveSessions(): number {
    return [...this.sessions.values()].filter((s) => !s.revoked).length;
  }

  private principal(token: string): FakeSession | null {
    const a = this.access.get(token);
    if (!a || a.exp <= this.clock.now()) return null;
    const s = this.sessions.get(a.sid);
    return s && !s.revoked ? s : null;
  }

  private issue(session: FakeSession): { access_token: string; token_type: 'Bearer'; expires_in: number; refresh_expires_in: number; session_id: string } {
    const token = `at-${++this.n}`;
    this.access.set(token, { sid: session.id, exp: this.clock.now() + this.ttl * 1000 });
    return { access_token: token, token_type: 'Bearer', expires_in: this.ttl, refresh_expires_in: 86400, session_id: session.id };
  }

  private login(body: Record<string, unknown>): Response {
    if (body.password === 'locked') return problem(423, 'account_locked', { locked_until: '2026-01-02T00:00:00.000Z' });
    if (body.password === 'throttled') return new Response(JSON.stringify({ code: 'too_many_attempts', status: 429, retry_after: 7 }), { status: 429, headers: { 'retry-after': '7' } });
    if (body.password !== 'right password') return problem(401, 'invalid_credentials');
    const session: FakeSession = { id: `s-${++this.n}`, userId: `u-${String(body.username)}`, refresh: `rt-${++this.n}`, revoked: false };
    this.sessions.set(session.id, session);
    const tokens = this.issue(session);
    if (body.cookie === true) {
      this.jar = session.refresh;
      return ok(200, { ...tokens, device_token: 'dt' });
    }
    return ok(200, { ...tokens, refresh_token: session.refresh, device_token: 'dt' });
  }

  private async refresh(body: Record<string, unknown>): Promise<Response> {
    const fromCookie = body.refresh_token === undefined;
    // a browser reads its cookie jar when the request leaves
    const presented = fromCookie ? this.jar : String(body.refresh_token);
    if (!presented) return problem(400, 'invalid_request');
    this.inFlightRefreshes++;
    this.maxInFlightRefreshes = Math.max(this.maxInFlightRefreshes, this.inFlightRefreshes);
    try {
      await this.refreshDelay();
      const failure = this.refreshFailures.shift();
      if (failure !== undefined) return problem(failure, failure === 503 ? 'overloaded' : 'server_error');
      const reusedOf = this.retired.get(presented);
      if (reusedOf) {
        this.reuseDetected++;
        this.revoke(reusedOf);
        if (fromCookie) this.jar = null;
        return problem(401, 'refresh_token_reused');
      }
      const session = [...this.sessions.values()].find((s) => s.refresh === presented);
      if (!session || session.revoked) {
        if (fromCookie) this.jar = null;
        return problem(401, 'invalid_grant');
      }
      this.retired.set(presented, session.id);
      session.refresh = `rt-${++this.n}`;
      if (fromCookie) this.jar = session.refresh;
      const tokens = this.issue(session);
      return ok(200, fromCookie ? tokens : { ...tokens, refresh_token: session.refresh });
    } finally {
      this.inFlightRefreshes--;
    }
  }

  private logout(principal: FakeSession | null, body: Record<string, unknown>): Response {
    const byCookie = principal ? null : ([...this.sessions.values()].find((s) => s.refresh === this.jar && !s.revoked) ?? null);
    const who = principal ?? byCookie;
    const scope = String(body.scope ?? 'session');
    if (scope !== 'others') this.jar = null;
    if (!who) return problem(401, 'invalid_token');
    for (const s of this.sessions.values()) {
      if (s.userId !== who.userId) continue;
      if (scope === 'all' || (scope === 'session' && s.id === who.id) || (scope === 'others' && s.id !== who.id)) s.revoked = true;
    }
    return ok(204);
  }
}

/** Web Locks: callbacks for one name run one after another. */
export class FakeLocks implements LockManagerLike {
  private readonly tails = new Map<string, Promise<unknown>>();
  request<T>(name: string, callback: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(name) ?? Promise.resolve()).then(callback);
    this.tails.set(
      name,
      run.catch(() => {}),
    );
    return run;
  }
}

/** BroadcastChannel: a message reaches every other member, later, as a copy. */
export class ChannelHub {
  private readonly members = new Set<FakeChannel>();
  join(): FakeChannel {
    const channel = new FakeChannel(this.members);
    this.members.add(channel);
    return channel;
  }
}

class FakeChannel implements ChannelLike {
  private readonly listeners: ((event: { data: unknown }) => void)[] = [];
  constructor(private readonly members: Set<FakeChannel>) {}
  postMessage(message: TabMessage): void {
    for (const other of this.members) if (other !== this) setImmediate(() => other.deliver(structuredClone(message)));
  }
  addEventListener(_type: 'message', listener: (event: { data: unknown }) => void): void {
    this.listeners.push(listener);
  }
  close(): void {
    this.members.delete(this);
  }
  private deliver(data: unknown): void {
    for (const listener of this.listeners) listener({ data });
  }
}

export class MemoryStorage implements MarkerStorage {
  readonly items = new Map<string, string>();
  /** every value ever written, to prove no token was ever stored */
  readonly written: string[] = [];
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.written.push(`${key}=${value}`);
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}
