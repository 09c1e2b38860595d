// Several real Latch nodes (separate `latch serve` processes) on one PostgreSQL and one Redis,
// talked to over loopback only: they behave as one server, a logout anywhere is refused
// everywhere, and losing Redis or restarting PostgreSQL wedges nothing (issue 3, DESIGN.md
// "One node, many nodes" and points 4 to 6). The shared services are never paused or
// restarted (other suites use them in parallel): each outage runs on a private redis-server
// or PostgreSQL started here. Each cluster has its own database and Redis prefix.
// Runs when LATCH_TEST_POSTGRES_URL and LATCH_TEST_REDIS_URL are set; in CI their absence fails.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import pg from 'pg';
import {
  call,
  Cleanup,
  freshDatabase,
  LatchNode,
  login,
  logout,
  masterKey,
  me,
  PASSWORD,
  PrivatePostgres,
  PrivateRedis,
  randomName,
  refresh,
  register,
  sleep,
  startNodes,
  untilRefused,
  type NodeEnv,
  type Reply,
  type Tokens,
} from './harness.ts';

const postgresUrl = process.env.LATCH_TEST_POSTGRES_URL;
const redisUrl = process.env.LATCH_TEST_REDIS_URL;
const ISSUER = 'http://latch.cluster.test';
/** Correctness bound for propagation; the speed itself is the benchmark's business (bench/cluster.ts). */
const REFUSED_WITHIN_MS = 2_000;

const ms = (n: number): string => `${n.toFixed(1)} ms`;

/** The env every node of one cluster shares: one database, one Redis prefix, one issuer, one master key. */
function clusterEnv(databaseUrl: string, redis: string | undefined, extra: NodeEnv = {}): NodeEnv {
  return {
    LATCH_DATABASE_URL: databaseUrl,
    LATCH_REDIS_URL: redis,
    LATCH_REDIS_PREFIX: `${randomName('latch-c-')}:`,
    LATCH_ISSUER: ISSUER,
    LATCH_MASTER_KEY: masterKey(),
    LATCH_POLL_INTERVAL: '100',
    ...extra,
  };
}

/** Every node refuses the token within REFUSED_WITHIN_MS of `since`; returns how long each took. */
async function refusedEverywhere(nodes: LatchNode[], token: string, since: number): Promise<number[]> {
  const times = await Promise.all(nodes.map((n) => untilRefused(n, token, since, REFUSED_WITHIN_MS)));
  times.forEach((t, i) => assert.notEqual(t, null, `node ${nodes[i]!.name} still accepts the token ${REFUSED_WITHIN_MS} ms after the logout`));
  return times as number[];
}

/** No answer is a 500, and every error is RFC 9457 problem+json with a code. */
function assertProblemOrOk(r: Reply, what: string): void {
  assert.notEqual(r.status, 500, `${what}: 500 ${r.text}`);
  if (r.status >= 400) {
    assert.match(r.type, /^application\/problem\+json/, `${what}: ${r.status} ${r.type} ${r.text}`);
    assert.equal(typeof r.body?.code, 'string', `${what}: no code in ${r.text}`);
  }
}

/** Waits until `text()` holds one whole HTTP response (headers and a Content-Length body); returns it. */
async function untilComplete(text: () => string, withinMs: number): Promise<string> {
  const deadline = performance.now() + withinMs;
  for (;;) {
    const raw = text();
    const headEnd = raw.indexOf('\r\n\r\n');
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(raw)?.[1] ?? NaN);
    if (headEnd >= 0 && Buffer.byteLength(raw.slice(headEnd + 4)) >= length) return raw;
    if (performance.now() > deadline) assert.fail(`no whole response within ${withinMs} ms: ${raw.slice(0, 200)}`);
    await sleep(10);
  }
}

function missingServices(): string | null {
  const missing = [!postgresUrl && 'LATCH_TEST_POSTGRES_URL', !redisUrl && 'LATCH_TEST_REDIS_URL'].filter(Boolean);
  return missing.length > 0 ? `${missing.join(' and ')} not set, so the multi-node tests did not run (set them to run them)` : null;
}

const skipReason = missingServices();
if (skipReason) {
  if (process.env.CI === 'true') it('multi-node cluster', () => assert.fail(`${skipReason}. CI must run them.`));
  else it('multi-node cluster', { skip: skipReason }, () => {});
} else {
  clusterSuite(postgresUrl!, redisUrl!);
}

function clusterSuite(sharedPostgres: string, sharedRedis: string): void {
  describe('three nodes on PostgreSQL and Redis behave as one server', { timeout: 90_000 }, () => {
    const cleanup = new Cleanup();
    let env: NodeEnv;
    let database: Awaited<ReturnType<typeof freshDatabase>>;
    let a: LatchNode, b: LatchNode, c: LatchNode;
    let nodes: LatchNode[];

    before(async () => {
      database = await freshDatabase(sharedPostgres);
      cleanup.add(() => database.drop());
      // grace 2 s, so reuse detection across nodes can be shown without waiting 10 s
      env = clusterEnv(database.url, sharedRedis, { LATCH_REFRESH_REUSE_GRACE: '2' });
      nodes = await startNodes(['A', 'B', 'C'], env);
      for (const n of nodes) cleanup.add(() => n.stop());
      [a, b, c] = nodes as [LatchNode, LatchNode, LatchNode];
    });
    after(() => cleanup.run());

    it('a token from A works on B and C; every node publishes the same keys and issuer', async () => {
      const id = await register(a, 'ada');
      const t = await login(a, 'ada');
      for (const n of nodes) {
        const r = await me(n, t.access_token);
        assert.equal(r.status, 200, `${n.name}: ${r.text}`);
        assert.deepEqual(r.body, { id, username: 'ada', session_id: t.session_id });
      }
      const jwks = await Promise.all(nodes.map((n) => call(n, 'GET', '/.well-known/jwks.json')));
      assert.equal(jwks[0]!.body && (jwks[0]!.body.keys as unknown[]).length, 1, 'one signing key, although three nodes booted at once on an empty database');
      for (const r of jwks) assert.deepEqual(r.body, jwks[0]!.body);
      for (const n of nodes) assert.equal((await call(n, 'GET', '/.well-known/oauth-authorization-server')).body?.issuer, ISSUER);
    });

    it('a logout on A is refused on A at once and on B and C within 2 s', async (t) => {
      await register(b, 'bob');
      const times: number[] = [];
      for (let trial = 0; trial < 20; trial += 1) {
        const s = await login(a, 'bob');
        for (const n of [b, c]) assert.equal((await me(n, s.access_token)).status, 200);
        const out = await logout(a, s.access_token);
        assert.equal(out.status, 204, out.text);
        const at = performance.now();
        assert.equal((await me(a, s.access_token)).status, 401, 'the node that revoked refuses on the very next request');
        times.push(...(await refusedEverywhere([b, c], s.access_token, at)));
        const again = await refresh(c, s.refresh_token);
        assert.equal(again.status, 401, 'the refresh token of a logged-out session is dead on every node');
      }
      times.sort((x, y) => x - y);
      t.diagnostic(`204 on A to first 401 on B/C over ${times.length} probes: median ${ms(times[times.length >> 1]!)}, max ${ms(times[times.length - 1]!)}`);
    });

    it('sessions are listed and revoked from any node', async () => {
      await register(c, 'sam');
      const onA = await login(a, 'sam', { device: 'laptop' });
      const onB = await login(b, 'sam', { device: 'phone' });
      const onC = await login(c, 'sam', { device: 'tablet' });

      const listed = await call(c, 'GET', '/v1/sessions', { token: onC.access_token });
      assert.equal(listed.status, 200, listed.text);
      const sessions = listed.body!.sessions as { id: string; device: string; current: boolean }[];
      assert.deepEqual(sessions.map((s) => s.id).sort(), [onA.session_id, onB.session_id, onC.session_id].sort());
      assert.deepEqual(
        sessions.filter((s) => s.current).map((s) => s.device),
        ['tablet'],
      );

      // B ends the laptop session, which A created
      const ended = await call(b, 'DELETE', `/v1/sessions/${onA.session_id}`, { token: onB.access_token });
      assert.equal(ended.status, 204, ended.text);
      await refusedEverywhere(nodes, onA.access_token, performance.now());
      const relisted = await call(a, 'GET', '/v1/sessions', { token: onC.access_token });
      assert.deepEqual((relisted.body!.sessions as { id: string }[]).map((s) => s.id).sort(), [onB.session_id, onC.session_id].sort());

      // another user's session is "not found" on every node, and stays alive
      const other = await login(a, 'ada');
      for (const n of nodes) assert.equal((await call(n, 'DELETE', `/v1/sessions/${other.session_id}`, { token: onC.access_token })).status, 404);
      assert.equal((await me(b, other.access_token)).status, 200);

      // logout everywhere from C ends the phone session too, on every node; a new login lives
      assert.equal((await logout(c, onC.access_token, 'all')).status, 204);
      const since = performance.now();
      await refusedEverywhere(nodes, onB.access_token, since);
      await refusedEverywhere(nodes, onC.access_token, since);
      const fresh = await login(b, 'sam');
      for (const n of nodes) assert.equal((await me(n, fresh.access_token)).status, 200);
    });

    it('two nodes racing on one refresh token yield exactly one live successor; reuse detection holds across nodes', async () => {
      await register(a, 'rita');
      const first = await login(a, 'rita');
      const db = new pg.Client({ connectionString: database.url });
      db.on('error', () => {});
      await db.connect();
      try {
        let current: Tokens = first;
        const ROUNDS = 40;
        for (let round = 0; round < ROUNDS; round += 1) {
          // two at once on A and B; every fourth round also one on C
          const racers = round % 4 === 3 ? [a, b, c] : [a, b];
          const replies = await Promise.all(racers.map((n) => refresh(n, current.refresh_token)));
          for (const r of replies) assertProblemOrOk(r, `round ${round}`);
          // inside the grace window the loser gets the winner's successor, not a second one
          assert.deepEqual(
            replies.map((r) => r.status),
            racers.map(() => 200),
            `round ${round}: ${replies.map((r) => `${r.status} ${r.status === 200 ? '' : r.text}`).join(' | ')}`,
          );
          const successors = new Set(replies.map((r) => r.body!.refresh_token));
          assert.equal(successors.size, 1, `round ${round}: ${successors.size} different successors`);
          const live = await db.query<{ live: string; total: string }>(
            'SELECT count(*) FILTER (WHERE used_at IS NULL) AS live, count(*) AS total FROM refresh_tokens WHERE session_id = $1',
            [first.session_id],
          );
          assert.deepEqual(live.rows[0], { live: '1', total: String(round + 2) }, `round ${round}: refresh tokens of the session`);
          current = replies[0]!.body as unknown as Tokens;
        }
        for (const n of nodes) assert.equal((await me(n, current.access_token)).status, 200);

        // outside the grace window, presenting a rotated token is theft: the session ends everywhere
        await sleep(2_300);
        const stolen = await refresh(c, first.refresh_token);
        assert.equal(stolen.status, 401);
        assert.equal(stolen.body?.code, 'refresh_token_reused');
        await refusedEverywhere(nodes, current.access_token, performance.now());
        const latest = await refresh(b, current.refresh_token);
        assert.equal(latest.status, 401, 'the newest refresh token died with its session');
        assert.equal(latest.body?.code, 'invalid_grant');
      } finally {
        await db.end();
      }
    });

    it('a node whose master key cannot open the stored signing keys exits non-zero and says so', async () => {
      const refused = await LatchNode.bootFailure({ ...env, LATCH_MASTER_KEY: masterKey() });
      assert.notEqual(refused.code, 0, refused.stderr);
      assert.equal(refused.signal, null, 'it exited by itself');
      assert.match(refused.stderr, /master key cannot open the stored signing key/);
      assert.match(refused.stderr, /LATCH_MASTER_KEY/);
      // the cluster carries on with its one key
      const jwks = await call(a, 'GET', '/.well-known/jwks.json');
      assert.equal((jwks.body!.keys as unknown[]).length, 1);
    });

    it('SIGTERM drains: a request in flight is answered, new connections are refused, then the node exits 0', async () => {
      // a login whose headers have arrived but whose body has not: in flight when the signal lands.
      // Keep-alive, as a load balancer's connection is: the drain must not wait for the client to hang up.
      const body = JSON.stringify({ username: 'ada', password: PASSWORD });
      const socket = connect(c.port, '127.0.0.1');
      socket.setEncoding('utf8');
      let response = '';
      socket.on('data', (chunk: string) => (response += chunk));
      socket.on('error', () => {});
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      try {
        socket.write(`POST /v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`);
        await sleep(300);
        const exit = c.exited();
        c.signal('SIGTERM');
        for (let i = 0; i < 100 && !c.stderr.includes('SIGTERM: draining'); i += 1) await sleep(20);
        assert.match(c.stderr, /SIGTERM: draining/);
        await assert.rejects(fetch(`${c.url}/healthz`), 'a draining node accepts no new connection');
        assert.equal(c.alive, true, 'the node exited with a request in flight');
        socket.write(body.slice(10));
        const answered = await untilComplete(() => response, 10_000);
        assert.match(answered, /^HTTP\/1\.1 200 /, answered.slice(0, 200));
        const ended = await Promise.race([exit, sleep(3_000).then(() => null)]);
        if (ended === null) {
          socket.destroy();
          const late = await Promise.race([exit, sleep(12_000).then(() => null)]);
          const connection = /\r\nconnection: ([^\r]*)/i.exec(answered)?.[1];
          assert.fail(
            `still running 3 s after answering its last in-flight request (Connection: ${connection}); ` +
              `once the client hung up it ended with ${JSON.stringify(late)}. stderr: ${c.stderr}`,
          );
        }
        assert.deepEqual(ended, { code: 0, signal: null }, c.stderr);
      } finally {
        socket.destroy();
      }
      // the other nodes are unaffected
      for (const n of [a, b]) assert.equal((await call(n, 'GET', '/readyz')).status, 200);
    });
  });

  describe('Redis paused or killed: logouts still reach every node, and the bus comes back', { timeout: 90_000 }, () => {
    const cleanup = new Cleanup();
    let redis: PrivateRedis;
    let env: NodeEnv;
    let a: LatchNode, b: LatchNode, c: LatchNode;
    let nodes: LatchNode[];

    before(async () => {
      redis = await PrivateRedis.start();
      cleanup.add(() => redis.stop());
      const database = await freshDatabase(sharedPostgres);
      cleanup.add(() => database.drop());
      env = clusterEnv(database.url, redis.url);
      nodes = await startNodes(['A', 'B', 'C'], env);
      for (const n of nodes) cleanup.add(() => n.stop());
      [a, b, c] = nodes as [LatchNode, LatchNode, LatchNode];
      await register(a, 'ola');
    });
    after(() => cleanup.run());

    const channel = (): string => `${env.LATCH_REDIS_PREFIX}revocations`;

    async function untilSubscribed(count: number, withinMs = 15_000): Promise<number> {
      const started = performance.now();
      for (;;) {
        const n = await redis.subscribers(channel()).catch(() => NaN);
        if (n === count) return performance.now() - started;
        if (performance.now() - started > withinMs) assert.fail(`${n} of ${count} nodes subscribed ${withinMs} ms after Redis came back`);
        await sleep(50);
      }
    }

    /** A logout on `from` is refused by the other nodes; resolves with their times. */
    async function logoutReaches(from: LatchNode, t: TestContext, label: string): Promise<void> {
      const s = await login(from, 'ola');
      const out = await logout(from, s.access_token);
      assert.equal(out.status, 204, out.text);
      const since = performance.now();
      const others = nodes.filter((n) => n !== from);
      const times = await refusedEverywhere(others, s.access_token, since);
      t.diagnostic(`${label}: logout took ${ms(out.ms)}; refused on ${others.map((n, i) => `${n.name} after ${ms(times[i]!)}`).join(', ')}`);
    }

    it('paused (SIGSTOP): a logout on A is still refused on B and C; logins work; after SIGCONT the bus carries wake-ups again', async (t) => {
      await untilSubscribed(3);
      await logoutReaches(a, t, 'before the pause');
      const s = await login(a, 'ola');
      redis.pause();
      try {
        const out = await logout(a, s.access_token);
        assert.equal(out.status, 204, 'a logout does not wait for Redis');
        const times = await refusedEverywhere([b, c], s.access_token, performance.now());
        t.diagnostic(`during the pause: logout took ${ms(out.ms)}; refused on B after ${ms(times[0]!)}, C after ${ms(times[1]!)} (by polling)`);
        const during = await call(b, 'POST', '/v1/login', { body: { username: 'ola', password: PASSWORD } });
        assert.equal(during.status, 200, `login on B while Redis hangs: ${during.status} ${during.text}`);
        t.diagnostic(`login on B while Redis hangs took ${ms(during.ms)}`);
        for (const n of nodes) assert.equal((await call(n, 'GET', '/readyz')).status, 200, `${n.name}: a lost Redis alone does not make a node unready`);
        await logoutReaches(c, t, 'a second logout during the pause');
      } finally {
        redis.resume();
      }
      await untilSubscribed(3);
      await logoutReaches(b, t, 'after SIGCONT');
    });

    it('killed and restarted on the same port: a logout made meanwhile reaches every node; the nodes resubscribe', async (t) => {
      const s = await login(b, 'ola');
      await redis.kill();
      const out = await logout(a, s.access_token);
      assert.equal(out.status, 204, out.text);
      const times = await refusedEverywhere([b, c], s.access_token, performance.now());
      t.diagnostic(`Redis down: logout took ${ms(out.ms)}; refused on B after ${ms(times[0]!)}, C after ${ms(times[1]!)} (by polling)`);
      const during = await login(c, 'ola');
      for (const n of nodes) assert.equal((await me(n, during.access_token)).status, 200);
      await logoutReaches(c, t, 'a second logout while Redis is down');

      await redis.start();
      const resubscribed = await untilSubscribed(3);
      t.diagnostic(`all three nodes resubscribed ${ms(resubscribed)} after Redis came back`);
      await logoutReaches(a, t, 'after the restart');
      // the session logged in while Redis was down ends everywhere too
      assert.equal((await logout(b, during.access_token)).status, 204);
      await refusedEverywhere(nodes, during.access_token, performance.now());
    });
  });

  describe('a PostgreSQL restart leaves no node wedged', { timeout: 90_000 }, () => {
    const cleanup = new Cleanup();
    const unavailable = PrivatePostgres.unavailableReason();
    let postgres: PrivatePostgres;
    let nodes: LatchNode[];
    const STALENESS_BUDGET_MS = 5_000;

    before(async () => {
      if (unavailable) return;
      postgres = await PrivatePostgres.start();
      cleanup.add(() => postgres.destroy());
      nodes = await startNodes(['A', 'B', 'C'], clusterEnv(postgres.url(), sharedRedis, { LATCH_STALENESS_BUDGET: String(STALENESS_BUDGET_MS / 1000) }));
      for (const n of nodes) cleanup.add(() => n.stop());
    });
    after(() => cleanup.run());

    // without a private PostgreSQL this test cannot run: a skip here, a failure in CI
    const skip = unavailable && process.env.CI !== 'true' ? `a private PostgreSQL cannot run here: ${unavailable}` : false;

    it('503 problem+json (never 500) while it is down, token checks from memory within the staleness budget, full service after, without a restart', { skip }, async (t) => {
      if (unavailable) assert.fail(`a private PostgreSQL cannot run here: ${unavailable}`);
      const [a, b, c] = nodes as [LatchNode, LatchNode, LatchNode];
      await register(a, 'pia');
      const live = await login(a, 'pia');
      const revoked = await login(b, 'pia');
      assert.equal((await logout(b, revoked.access_token)).status, 204);
      await refusedEverywhere(nodes, revoked.access_token, performance.now());
      const spare = await login(c, 'pia');

      // traffic on every node through the whole outage; no answer may be a 500
      const seen = new Map<string, number>();
      let loading = true;
      let loadError: unknown = null;
      const load = (async () => {
        for (let i = 0; loading; i += 1) {
          const n = nodes[i % nodes.length]!;
          const replies = await Promise.all([
            me(n, live.access_token),
            call(n, 'POST', '/v1/login', { body: { username: 'pia', password: PASSWORD } }),
            call(n, 'GET', '/v1/sessions', { token: live.access_token }),
            call(n, 'GET', '/readyz'),
          ]);
          for (const r of replies) {
            assertProblemOrOk(r, `load on ${n.name}`);
            const key = `${r.status}${r.body && typeof r.body.code === 'string' ? ` ${r.body.code}` : ''}`;
            seen.set(key, (seen.get(key) ?? 0) + 1);
          }
          await sleep(20);
        }
      })().catch((err: unknown) => {
        loadError = err;
      });

      try {
        await sleep(200);
        const stopped = performance.now();
        await postgres.stop();
        t.diagnostic(`pg_ctl stop -m fast took ${ms(performance.now() - stopped)}`);

        // within the budget: tokens are checked from memory, and what needs the store says 503
        for (const n of nodes) {
          const liveMe = await me(n, live.access_token);
          assert.ok(performance.now() - stopped < STALENESS_BUDGET_MS - 1_000, 'the machine is too slow to check inside the budget');
          assert.equal(liveMe.status, 503, `${n.name}: ${liveMe.text}`);
          assert.equal(liveMe.body?.code, 'store_unavailable', 'the token was accepted from memory; only the user lookup failed');
          assertProblemOrOk(liveMe, n.name);
          const deadMe = await me(n, revoked.access_token);
          assert.equal(deadMe.status, 401, `${n.name}: the revoked token is refused from memory: ${deadMe.text}`);
          for (const [method, path, body, token] of [
            ['POST', '/v1/login', { username: 'pia', password: PASSWORD }, undefined],
            ['POST', '/v1/refresh', { refresh_token: spare.refresh_token }, undefined],
            ['POST', '/v1/logout', {}, spare.access_token],
            ['POST', '/v1/users', { username: randomName('u'), password: PASSWORD }, undefined],
          ] as const) {
            const r = await call(n, method, path, { body, ...(token ? { token } : {}) });
            assertProblemOrOk(r, `${n.name} ${path}`);
            assert.equal(r.status, 503, `${n.name} ${path}: ${r.text}`);
            assert.equal(r.body?.code, 'store_unavailable', `${n.name} ${path}`);
          }
          const ready = await call(n, 'GET', '/readyz');
          assert.equal(ready.status, 503);
          assert.equal((await call(n, 'GET', '/.well-known/jwks.json')).status, 200, 'keys are served from memory');
        }

        // past the budget the nodes cannot confirm the log: they fail closed, not open
        for (const n of nodes) {
          let r: Reply;
          const deadline = stopped + STALENESS_BUDGET_MS + 3_000;
          do {
            await sleep(100);
            r = await me(n, live.access_token);
          } while (r.body?.code !== 'revocation_state_stale' && performance.now() < deadline);
          assertProblemOrOk(r, n.name);
          assert.equal(r.status, 503);
          assert.equal(r.body?.code, 'revocation_state_stale', `${n.name} past the staleness budget: ${r.text}`);
        }
        t.diagnostic(`every node refused tokens as stale ${ms(performance.now() - stopped)} after the stop began`);

        const restarted = performance.now();
        await postgres.start();
        const readyAfter: number[] = [];
        for (const n of nodes) {
          for (;;) {
            const r = await call(n, 'GET', '/readyz');
            if (r.status === 200) break;
            assert.ok(performance.now() - restarted < 20_000, `${n.name} not ready 20 s after PostgreSQL came back: ${r.text}`);
            await sleep(50);
          }
          readyAfter.push(performance.now() - restarted);
        }
        t.diagnostic(`ready again after PostgreSQL started: ${readyAfter.map((x, i) => `${nodes[i]!.name} ${ms(x)}`).join(', ')}`);
      } finally {
        loading = false;
        await load;
        t.diagnostic(`answers during the run: ${[...seen].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
      }
      if (loadError) throw loadError;
      assert.ok(seen.has('503 store_unavailable') || seen.has('503 not_ready'), 'the load saw the outage');

      // every node serves logins, refresh and logout again, and propagation works
      for (const n of nodes) {
        assert.equal((await me(n, live.access_token)).status, 200, `${n.name}: the live token works again`);
        assert.equal((await me(n, revoked.access_token)).status, 401, `${n.name}: the revoked one stays revoked`);
        const s = await login(n, 'pia');
        const rotated = await refresh(n, s.refresh_token);
        assert.equal(rotated.status, 200, `${n.name} refresh: ${rotated.text}`);
        const token = String(rotated.body!.access_token);
        assert.equal((await logout(n, token)).status, 204);
        await refusedEverywhere(nodes, token, performance.now());
      }
      const spareRotated = await refresh(b, spare.refresh_token);
      assert.equal(spareRotated.status, 200, 'the refresh that failed during the outage did not consume the token');
    });
  });

  describe('boot refusals', () => {
    it('with LATCH_DATABASE_URL set, a node without LATCH_ISSUER exits non-zero naming LATCH_ISSUER', async () => {
      const env = clusterEnv(sharedPostgres, sharedRedis);
      const refused = await LatchNode.bootFailure({ ...env, LATCH_ISSUER: undefined });
      assert.notEqual(refused.code, 0, refused.stderr);
      assert.equal(refused.signal, null);
      assert.match(refused.stderr, /LATCH_ISSUER/);
      assert.doesNotMatch(refused.stderr, /listening on/);
    });
  });
}
