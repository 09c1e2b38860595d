// latch/client with a fake clock and a fake server: when silent refreshes happen, that
// concurrent callers and tabs share one, and that logout clears everything everywhere (also
// offline, where it leaves only a flag behind).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, LatchClientError, LOGOUT_MARKER, type AuthState, type ClientOptions, type LatchClient } from '../src/client/index.ts';
import { ChannelHub, FakeClock, FakeLatch, FakeLocks, MemoryStorage, settle } from './client-fakes.ts';

interface Browser {
  clock: FakeClock;
  server: FakeLatch;
  storage: MemoryStorage;
  locks: FakeLocks;
  hub: ChannelHub;
  /** a new tab of this browser (same cookie jar, storage, locks and channel) */
  tab(options?: Partial<ClientOptions>): LatchClient & { changes: AuthState[] };
}

function browser(setup: { ttl?: number; locks?: boolean; channel?: boolean } = {}): Browser {
  const clock = new FakeClock();
  const server = new FakeLatch(clock);
  server.ttl = setup.ttl ?? 300;
  const storage = new MemoryStorage();
  const locks = new FakeLocks();
  const hub = new ChannelHub();
  return {
    clock,
    server,
    storage,
    locks,
    hub,
    tab(options = {}) {
      const client = createClient({
        baseUrl: server.base,
        mode: 'cookie',
        fetch: server.fetch,
        now: clock.now,
        timers: clock.timers,
        storage,
        locks: setup.locks === false ? null : locks,
        channel: setup.channel === false ? null : hub.join(),
        ...options,
      });
      const changes: AuthState[] = [];
      client.onChange((state) => changes.push(state));
      return Object.assign(client, { changes });
    },
  };
}

const login = (client: LatchClient): Promise<AuthState> => client.login({ username: 'alice', password: 'right password' });
const refreshes = (server: FakeLatch): number => server.log.filter((r) => r === 'POST /v1/refresh').length;

describe('silent refresh scheduling', () => {
  it('refreshes refreshLeewaySeconds (20 s) before the access token expires, and again after each refresh', async () => {
    const b = browser({ ttl: 300 });
    const tab = b.tab();
    const start = b.clock.now();
    const state = await login(tab);
    assert.equal(state.status, 'logged_in');
    assert.equal(state.user?.username, 'alice');
    assert.equal(state.expiresAt, start + 300_000);
    assert.equal(state.nextRefreshAt, start + 280_000);
    await b.clock.advance(279_999);
    assert.equal(refreshes(b.server), 0);
    await b.clock.advance(1);
    assert.equal(refreshes(b.server), 1);
    assert.equal(tab.state.reason, 'refreshed');
    assert.equal(tab.state.nextRefreshAt, start + 280_000 + 280_000);
    await b.clock.advance(280_000);
    assert.equal(refreshes(b.server), 2);
    tab.close();
  });

  it('honours a custom leeway', async () => {
    const b = browser({ ttl: 300 });
    const tab = b.tab({ refreshLeewaySeconds: 60 });
    const start = b.clock.now();
    await login(tab);
    assert.equal(tab.state.nextRefreshAt, start + 240_000);
    tab.close();
  });

  it('a token shorter than the leeway is refreshed at a quarter of its life, never in a busy loop', async () => {
    for (const [ttl, delay] of [
      [25, 6_250],
      [30, 10_000],
      [10, 2_500],
      [1, 250],
    ] as const) {
      const b = browser({ ttl });
      const tab = b.tab();
      const start = b.clock.now();
      await login(tab);
      assert.equal(tab.state.nextRefreshAt, start + delay, `ttl ${ttl}`);
      tab.close();
    }
  });

  it('keeps a session working across many expiries: every call carries a live token', async () => {
    const b = browser({ ttl: 30 });
    const tab = b.tab();
    await login(tab);
    for (let second = 0; second < 300; second += 7) {
      await b.clock.advance(7_000);
      const res = await tab.fetch('/v1/me');
      assert.equal(res.status, 200, `at ${second} s`);
    }
    // about one refresh every 10 s over 5 minutes, and the fetch wrapper never had to recover from a 401
    assert.ok(refreshes(b.server) >= 28 && refreshes(b.server) <= 31, String(refreshes(b.server)));
    assert.equal(b.server.log.filter((r) => r === 'GET /v1/me').length, 43 + 1);
    tab.close();
  });

  it('a passing failure (503) is retried with backoff and the session survives', async () => {
    const b = browser({ ttl: 60 });
    const tab = b.tab();
    await login(tab);
    b.server.refreshFailures = [503, 503];
    await b.clock.advance(40_000);
    assert.equal(tab.state.reason, 'refresh_failed');
    assert.equal(tab.state.status, 'logged_in');
    assert.equal(tab.state.nextRefreshAt, b.clock.now() + 1_000, 'first retry after 1 s');
    await b.clock.advance(1_000);
    assert.equal(tab.state.nextRefreshAt, b.clock.now() + 2_000, 'then 2 s');
    await b.clock.advance(2_000);
    assert.equal(tab.state.reason, 'refreshed');
    assert.equal(refreshes(b.server), 3);
    tab.close();
  });

  it('a refresh the server refuses ends the session (session_ended) in this tab and the others', async () => {
    const b = browser({ ttl: 60 });
    const first = b.tab();
    const second = b.tab();
    await login(first);
    await second.resume();
    assert.equal(second.state.status, 'logged_in');
    b.server.revoke(first.state.sessionId!);
    await b.clock.advance(45_000);
    assert.equal(first.state.status, 'logged_out');
    assert.equal(first.state.reason, 'session_ended');
    assert.equal(second.state.status, 'logged_out');
    assert.equal(second.state.reason, 'session_ended');
    first.close();
    second.close();
  });
});

describe('single flight', () => {
  it('concurrent refresh() calls share one request', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    await Promise.all([tab.refresh(), tab.refresh(), tab.refresh(), tab.refresh()]);
    assert.equal(refreshes(b.server), 1);
    assert.equal(b.server.reuseDetected, 0);
    tab.close();
  });

  it('on a 401 the fetch wrapper refreshes once and retries once; concurrent 401s share that refresh', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    // the server stops accepting this access token (as after an emergency key rotation)
    b.server.forget(await currentAccessToken(tab, b.server));
    const before = b.server.log.length;
    const results = await Promise.all([tab.fetch('/v1/me'), tab.fetch('/v1/me'), tab.fetch(`${b.server.base}/v1/sessions`)]);
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200],
    );
    assert.equal(refreshes(b.server), 1);
    assert.equal(b.server.log.length - before, 3 + 1 + 3);
    tab.close();
  });

  it('a 401 that a refresh cannot cure is returned after one retry, without a loop', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    b.server.revoke(tab.state.sessionId!);
    const res = await tab.fetch('/v1/me');
    assert.equal(res.status, 401);
    assert.equal(refreshes(b.server), 1);
    assert.equal(tab.state.status, 'logged_out');
    assert.equal(tab.state.reason, 'session_ended');
    tab.close();
  });

  it('an overdue refresh (timer throttled in a background tab) happens before the next call', async () => {
    const b = browser({ ttl: 60 });
    const tab = b.tab();
    await login(tab);
    // the timer did not fire (throttled); the clock moved on anyway
    b.clock.jump(70_000);
    assert.equal((await tab.fetch('/v1/me')).status, 200);
    assert.equal(refreshes(b.server), 1, 'refreshed first, not after a 401');
    assert.equal(b.server.log.filter((r) => r === 'GET /v1/me').length, 2);
    tab.close();
  });

  it('tabs refreshing at the same moment take turns (Web Locks): no overlap, no reuse detection', async () => {
    const b = browser();
    const tabs = [b.tab(), b.tab(), b.tab()];
    await login(tabs[0]!);
    for (const tab of tabs.slice(1)) await tab.resume();
    b.server.maxInFlightRefreshes = 0;
    await Promise.all(tabs.map((tab) => tab.refresh()));
    assert.equal(b.server.maxInFlightRefreshes, 1);
    assert.equal(b.server.reuseDetected, 0);
    for (const tab of tabs) assert.equal(tab.state.status, 'logged_in');
    // each tab holds its own, live access token
    for (const tab of tabs) assert.equal((await tab.fetch('/v1/me')).status, 200);
    assert.equal(b.server.liveSessions, 1);
    for (const tab of tabs) tab.close();
  });

  it('without Web Locks the BroadcastChannel mutex serialises the tabs', async () => {
    const b = browser({ locks: false });
    const tabs = [b.tab(), b.tab(), b.tab()];
    await login(tabs[0]!);
    for (const tab of tabs.slice(1)) {
      const resumed = tab.resume();
      await b.clock.advance(1_000);
      await resumed;
    }
    b.server.maxInFlightRefreshes = 0;
    const all = Promise.all(tabs.map((tab) => tab.refresh()));
    await b.clock.advance(30_000);
    await all;
    assert.equal(b.server.maxInFlightRefreshes, 1);
    assert.equal(b.server.reuseDetected, 0);
    for (const tab of tabs) assert.equal(tab.state.status, 'logged_in');
    for (const tab of tabs) tab.close();
  });

  it('regression: a want that reached a tab just before its own claim still counts (both orders)', async () => {
    // the first version cleared its list of rivals when it started to claim, so a tab that had
    // just heard another's want forgot it, and both went ahead with the same cookie
    for (const order of [0, 1]) {
      const b = browser({ locks: false });
      const tabs = [b.tab(), b.tab()];
      await login(tabs[0]!);
      const resumed = tabs[1]!.resume();
      await b.clock.advance(1_000);
      await resumed;
      b.server.maxInFlightRefreshes = 0;
      const [early, late] = order === 0 ? tabs : [tabs[1]!, tabs[0]!];
      const one = early!.refresh();
      await settle(2);
      const two = late!.refresh();
      await b.clock.advance(30_000);
      await Promise.all([one, two]);
      assert.equal(b.server.maxInFlightRefreshes, 1, `order ${order}`);
      assert.equal(b.server.reuseDetected, 0, `order ${order}`);
      for (const tab of tabs) tab.close();
    }
  });

  it('the test would notice: with neither locks nor a channel, simultaneous tabs do trip reuse detection', async () => {
    const b = browser({ locks: false, channel: false });
    const tabs = [b.tab(), b.tab()];
    await login(tabs[0]!);
    await tabs[1]!.resume();
    await Promise.allSettled(tabs.map((tab) => tab.refresh()));
    assert.ok(b.server.reuseDetected > 0);
    for (const tab of tabs) tab.close();
  });
});

describe('logout', () => {
  it('clears the token, tells the server, and every other tab shows the logged-out state', async () => {
    const b = browser();
    const first = b.tab();
    const second = b.tab();
    await login(first);
    await second.resume();
    const token = await currentAccessToken(first, b.server);
    const result = await first.logout();
    assert.deepEqual(result, { server: 'done' });
    assert.equal(first.state.status, 'logged_out');
    assert.equal(first.state.reason, 'logout');
    assert.equal(first.state.sessionId, null);
    assert.equal(first.state.nextRefreshAt, null);
    assert.equal(b.server.isLive(token), false, 'the server ended the session');
    assert.equal(b.server.jar, null, 'and cleared the cookie');
    await settle();
    assert.equal(second.state.status, 'logged_out');
    assert.equal(second.state.reason, 'other_tab');
    // nobody refreshes any more
    const before = refreshes(b.server);
    await b.clock.advance(3_600_000);
    assert.equal(refreshes(b.server), before);
    assert.equal(b.clock.pending, 0);
    // a call through the wrapper carries no token
    assert.equal((await first.fetch('/v1/me')).status, 401);
    first.close();
    second.close();
  });

  it('"all" ends every session; "others" keeps this one and this tab logged in', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    const other = b.tab({ mode: 'memory', channel: null, storage: null });
    await login(other);
    assert.equal(b.server.liveSessions, 2);
    assert.deepEqual(await tab.logout({ scope: 'others' }), { server: 'done' });
    assert.equal(tab.state.status, 'logged_in');
    assert.equal(b.server.liveSessions, 1);
    await login(other);
    assert.deepEqual(await tab.logout({ scope: 'all' }), { server: 'done' });
    assert.equal(b.server.liveSessions, 0);
    tab.close();
    other.close();
  });

  it('offline: clears locally, says so, leaves only a flag, and the next page load logs out before any refresh', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    const sessionsBefore = b.server.liveSessions;
    b.server.offline = true;
    const result = await tab.logout();
    assert.equal(result.server, 'pending');
    assert.ok(result.error instanceof LatchClientError && result.error.code === 'network_error');
    assert.equal(tab.state.status, 'logged_out');
    assert.equal(tab.state.logoutPending, true);
    assert.deepEqual([...b.storage.items], [[LOGOUT_MARKER, 'session']]);
    assert.equal(b.server.liveSessions, sessionsBefore, 'the server did not hear of it');
    tab.close();

    // the page is opened again, online
    b.server.offline = false;
    b.server.log.length = 0;
    const reloaded = b.tab();
    const state = await reloaded.resume();
    assert.equal(state.status, 'logged_out');
    assert.deepEqual(b.server.log, ['POST /v1/logout'], 'the logout went first, and nothing refreshed the session');
    assert.equal(b.server.liveSessions, 0);
    assert.equal(b.storage.items.size, 0);
    assert.equal(reloaded.state.logoutPending, false);
    reloaded.close();
  });

  it('a pending logout is sent before a new login, and the new session is not logged out later', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    b.server.offline = true;
    await tab.logout();
    b.server.offline = false;
    b.server.log.length = 0;
    await login(tab);
    assert.deepEqual(b.server.log.slice(0, 2), ['POST /v1/logout', 'POST /v1/login']);
    assert.equal(b.storage.items.size, 0);
    assert.equal(b.server.liveSessions, 1);
    tab.close();
  });

  it('never writes a token to storage', async () => {
    const b = browser({ ttl: 30 });
    const tab = b.tab();
    await login(tab);
    await b.clock.advance(120_000);
    b.server.offline = true;
    await tab.logout({ scope: 'all' });
    assert.ok(b.storage.written.length > 0);
    for (const written of b.storage.written) assert.doesNotMatch(written, /at-|rt-|dt/, written);
    tab.close();
  });

  it('a logout while a refresh is in flight wins: the late answer is dropped', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    let release!: () => void;
    b.server.refreshDelay = () => new Promise<void>((resolve) => (release = resolve));
    const refreshing = tab.refresh();
    await settle();
    await tab.logout();
    release();
    await refreshing;
    assert.equal(tab.state.status, 'logged_out');
    assert.equal(b.clock.pending, 0, 'no refresh scheduled for a session that was left');
    tab.close();
  });

  it('revoking this session from the list is a logout; another one leaves this tab alone', async () => {
    const b = browser();
    const tab = b.tab();
    await login(tab);
    const laptop = b.tab({ mode: 'memory', channel: null, storage: null });
    await login(laptop);
    const sessions = await tab.sessions();
    assert.equal(sessions.length, 2);
    const mine = sessions.find((s) => s.current)!;
    const theirs = sessions.find((s) => !s.current)!;
    assert.equal(typeof mine.createdAt, 'string');
    assert.equal(mine.userAgent, 'test');
    await tab.revokeSession(theirs.id);
    assert.equal(tab.state.status, 'logged_in');
    assert.equal((await laptop.fetch('/v1/me')).status, 401);
    assert.equal(laptop.state.reason, 'session_ended');
    await tab.revokeSession(mine.id);
    assert.equal(tab.state.status, 'logged_out');
    tab.close();
    laptop.close();
  });
});

describe('other calls', () => {
  it('login errors carry the server code, Retry-After and locked_until', async () => {
    const b = browser();
    const tab = b.tab();
    await assert.rejects(tab.login({ username: 'alice', password: 'wrong' }), { code: 'invalid_credentials', status: 401 });
    await assert.rejects(tab.login({ username: 'alice', password: 'throttled' }), { code: 'too_many_attempts', retryAfter: 7 });
    await assert.rejects(tab.login({ username: 'alice', password: 'locked' }), { code: 'account_locked', lockedUntil: '2026-01-02T00:00:00.000Z' });
    b.server.offline = true;
    await assert.rejects(tab.login({ username: 'alice', password: 'right password' }), { code: 'network_error', status: 0 });
    assert.notEqual(tab.state.status, 'logged_in');
    tab.close();
  });

  it('resume without a session is quietly logged out; a login in another tab is picked up', async () => {
    const b = browser();
    const first = b.tab();
    const second = b.tab();
    assert.equal((await first.resume()).status, 'logged_out');
    assert.equal(first.state.reason, 'no_session');
    await login(second);
    await settle();
    assert.equal(first.state.status, 'logged_in');
    assert.equal(first.state.user?.username, 'alice');
    first.close();
    second.close();
  });

  it('register, and changePassword reports a missing endpoint instead of pretending', async () => {
    const b = browser();
    const tab = b.tab();
    assert.deepEqual(await tab.register({ username: 'alice', password: 'right password' }), { id: 'u-alice', username: 'alice' });
    await login(tab);
    await tab.changePassword({ currentPassword: 'right password', newPassword: 'another password' });
    b.server.passwordEndpoint = false;
    await assert.rejects(tab.changePassword({ currentPassword: 'right password', newPassword: 'x'.repeat(9) }), { code: 'not_found', status: 404 });
    tab.close();
  });

  it('memory mode (Node): the refresh token stays in the object and travels in the body', async () => {
    const b = browser({ ttl: 60 });
    const node = b.tab({ mode: 'memory', channel: null, storage: null, locks: null });
    await login(node);
    assert.equal(b.server.jar, null, 'no cookie involved');
    await b.clock.advance(50_000);
    assert.equal(node.state.reason, 'refreshed');
    assert.equal((await node.fetch('/api/data')).status, 200);
    assert.deepEqual(await node.logout(), { server: 'done' });
    assert.equal(b.server.liveSessions, 0);
    node.close();
  });

  it('onChange listeners can unsubscribe, and a throwing listener does not break the others', async () => {
    const b = browser();
    const tab = b.tab();
    const seen: string[] = [];
    const stop = tab.onChange((s) => seen.push(s.reason));
    tab.onChange(() => {
      throw new Error('listener bug');
    });
    const originalError = console.error;
    console.error = () => {};
    try {
      await login(tab);
      stop();
      await tab.logout();
    } finally {
      console.error = originalError;
    }
    assert.deepEqual(seen, ['login']);
    assert.deepEqual(
      tab.changes.map((c) => c.reason),
      ['login', 'logout'],
    );
    tab.close();
  });
});

/** The access token the tab sends, read off the wire as a resource server would see it. */
async function currentAccessToken(tab: LatchClient, server: FakeLatch): Promise<string> {
  assert.equal((await tab.fetch('/v1/me')).status, 200);
  return server.lastBearer ?? '';
}
