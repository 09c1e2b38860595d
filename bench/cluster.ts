// The cluster suite (`npm run bench -- cluster`): the multi-node goals of DESIGN.md "What good
// looks like, measured", on real `latch serve` processes talked to over loopback.
//   propagation — a logout's 204 on node A to the first 401 on nodes B and C, with Redis and
//                 without it (poll only)
//   refresh     — refresh throughput on a PostgreSQL node against a SQLite node
//   catchup     — logouts made during a 5 s Redis outage (paused, then killed): when B and C
//                 refuse them, and how soon the bus carries wake-ups again
// PostgreSQL and Redis are private instances started here (so parallel test runs on the shared
// services neither disturb the figures nor get disturbed); without initdb the shared
// PostgreSQL (LATCH_TEST_POSTGRES_URL) is used with a fresh database.
import { cpus } from 'node:os';
import {
  Cleanup,
  freshDatabase,
  login,
  logout,
  masterKey,
  me,
  PrivatePostgres,
  PrivateRedis,
  randomName,
  refresh,
  register,
  sleep,
  startNodes,
  untilRefused,
  type LatchNode,
  type NodeEnv,
  type Tokens,
} from '../test/cluster/harness.ts';
import type { Part } from './core.ts';
import { fmtInt, fmtMs, median, percentile } from './measure.ts';
import type { Section } from './report.ts';

const ISSUER = 'http://latch.bench.test';
const POLL_INTERVAL_MS = 100;
const PROPAGATION_TRIALS = 100;
/** a probe loop gives up after this (a lost revocation would show as a timeout, not a hang) */
const PROBE_LIMIT_MS = 3_000;
const REDIS_GOAL_MS = 20;
const OUTAGE_MS = 5_000;
const USER = 'bench';

const goal = (met: boolean): string => (met ? 'met' : 'NOT met');

// ---- services ----------------------------------------------------------------------------

interface Services {
  /** a fresh database per call */
  database(): Promise<string>;
  redis: PrivateRedis;
  /** how PostgreSQL was provided, for the method lines */
  postgresNote: string;
  cleanup: Cleanup;
}

async function withServices<T>(body: (s: Services) => Promise<T>): Promise<T> {
  const cleanup = new Cleanup();
  try {
    let server: string;
    let postgresNote: string;
    const unavailable = PrivatePostgres.unavailableReason();
    if (!unavailable) {
      const postgres = await PrivatePostgres.start();
      cleanup.add(() => postgres.destroy());
      server = postgres.url();
      postgresNote = 'a private PostgreSQL started for this run (initdb defaults: fsync and synchronous_commit on)';
    } else {
      server = process.env.LATCH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
      postgresNote = `the PostgreSQL at ${new URL(server).host} (no private one: ${unavailable}), a fresh database`;
    }
    if (!PrivateRedis.available()) throw new Error('the cluster benchmark needs redis-server on the PATH');
    const redis = await PrivateRedis.start();
    cleanup.add(() => redis.stop());
    const database = async (): Promise<string> => {
      const db = await freshDatabase(server, 'latch_bench_');
      cleanup.add(() => db.drop());
      return db.url;
    };
    return await body({ database, redis, postgresNote, cleanup });
  } finally {
    await cleanup.run();
  }
}

function clusterEnv(databaseUrl: string, redisUrl: string | undefined, extra: NodeEnv = {}): NodeEnv {
  return {
    LATCH_DATABASE_URL: databaseUrl,
    LATCH_REDIS_URL: redisUrl,
    LATCH_REDIS_PREFIX: `${randomName('latch-bench-')}:`,
    LATCH_ISSUER: ISSUER,
    LATCH_MASTER_KEY: masterKey(),
    LATCH_POLL_INTERVAL: String(POLL_INTERVAL_MS),
    LATCH_LOG_LEVEL: 'warn',
    // a load test from one address: the per-address request limits would measure themselves
    LATCH_RATE_LIMITS: 'off',
    ...extra,
  };
}

async function cluster(s: Services, env: NodeEnv): Promise<LatchNode[]> {
  const nodes = await startNodes(['A', 'B', 'C'], env);
  for (const n of nodes) s.cleanup.add(() => n.stop());
  return nodes;
}

/** `count` sessions of USER, logged in `concurrency` at a time, spread over the nodes. */
async function sessions(nodes: LatchNode[], count: number, concurrency = 4): Promise<Tokens[]> {
  const out: Tokens[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await login(nodes[i % nodes.length]!, USER);
      }
    }),
  );
  return out;
}

async function expectStatus(node: LatchNode, token: string, status: number): Promise<number> {
  const r = await me(node, token);
  if (r.status !== status) throw new Error(`GET /v1/me on ${node.name}: ${r.status}, expected ${status}: ${r.text}`);
  return r.ms;
}

const stats = (xs: number[]): { p50: number; p90: number; p99: number; max: number } => ({
  p50: percentile(xs, 50),
  p90: percentile(xs, 90),
  p99: percentile(xs, 99),
  max: Math.max(...xs),
});

// ---- propagation -------------------------------------------------------------------------

interface PropagationRun {
  /** per node and trial: ms from the 204 to the first 401 */
  each: number[];
  /** per trial: the later of B and C */
  both: number[];
  timeouts: number;
  logoutMs: number[];
  probeMs: number[];
}

async function measurePropagation(nodes: LatchNode[], trials: number, progress: (line: string) => void, label: string): Promise<PropagationRun> {
  const [a, b, c] = nodes as [LatchNode, LatchNode, LatchNode];
  const pool = await sessions(nodes, trials);
  const run: PropagationRun = { each: [], both: [], timeouts: 0, logoutMs: [], probeMs: [] };
  for (let i = 0; i < trials; i += 1) {
    const s = pool[i]!;
    run.probeMs.push(await expectStatus(b, s.access_token, 200), await expectStatus(c, s.access_token, 200));
    // a random phase against the nodes' poll timers, so the no-bus figures cover the whole interval
    await sleep(Math.random() * (POLL_INTERVAL_MS + 10));
    const out = await logout(a, s.access_token);
    const since = performance.now();
    if (out.status !== 204) throw new Error(`logout on A: ${out.status} ${out.text}`);
    run.logoutMs.push(out.ms);
    const times = await Promise.all([b, c].map((n) => untilRefused(n, s.access_token, since, PROBE_LIMIT_MS)));
    for (const t of times) {
      if (t === null) run.timeouts += 1;
      else run.each.push(t);
    }
    if (times.every((t) => t !== null)) run.both.push(Math.max(...(times as number[])));
    if ((i + 1) % 25 === 0) progress(`  ${label}: ${i + 1}/${trials} trials`);
  }
  return run;
}

async function runPropagation(progress: (line: string) => void): Promise<Section> {
  return withServices(async (s) => {
    const runs: { label: string; goalMs: number; goalText: string; run: PropagationRun }[] = [];
    for (const withRedis of [true, false]) {
      const label = withRedis ? 'with Redis' : 'without Redis';
      progress(`  starting 3 nodes ${label}…`);
      const nodes = await cluster(s, clusterEnv(await s.database(), withRedis ? s.redis.url : undefined));
      await register(nodes[0]!, USER);
      const run = await measurePropagation(nodes, PROPAGATION_TRIALS, progress, label);
      await Promise.all(nodes.map((n) => n.stop()));
      runs.push({
        label,
        goalMs: withRedis ? REDIS_GOAL_MS : POLL_INTERVAL_MS,
        goalText: withRedis ? `p99 ≤ ${REDIS_GOAL_MS} ms` : `p99 ≤ ${POLL_INTERVAL_MS} ms (the poll interval)`,
        run,
      });
    }
    const rows: string[][] = [];
    for (const { label, goalMs, goalText, run } of runs) {
      for (const [which, xs] of [
        ['B and C, each', run.each],
        ['the later of B and C', run.both],
      ] as const) {
        const st = stats(xs);
        rows.push([`${label}: ${which}`, fmtInt(xs.length), fmtMs(st.p50), fmtMs(st.p90), fmtMs(st.p99), fmtMs(st.max), fmtInt(run.timeouts), goalText, goal(run.timeouts === 0 && st.p99 <= goalMs)]);
      }
    }
    const side = runs.map(({ label, run }) => [label, fmtMs(median(run.logoutMs)), fmtMs(percentile(run.logoutMs, 99)), fmtMs(median(run.probeMs))]);
    return {
      title: 'Cluster: logout propagation across processes',
      method: [
        `3 nodes (\`node bin/latch.js serve\`, separate processes) on ${s.postgresNote}; Redis: a private redis-server, or none.`,
        `LATCH_POLL_INTERVAL=${POLL_INTERVAL_MS}. ${PROPAGATION_TRIALS} trials per setup, each on a fresh session: GET /v1/me answers 200 on B and C, a random 0–${POLL_INTERVAL_MS + 10} ms pause,`,
        `POST /v1/logout on A; from its 204, B and C are probed with GET /v1/me back to back (one request in flight per node, both in parallel, fetch over 127.0.0.1, keep-alive)`,
        `until the first 401 (given up after ${PROBE_LIMIT_MS} ms: a timeout). A figure is the time from the 204 to the arrival of that 401, so it includes one probe round trip.`,
      ],
      tables: [
        { columns: ['setup', 'samples', 'p50', 'p90', 'p99', 'max', 'timeouts', 'goal', 'goal met'], rows },
        { columns: ['setup', 'logout 204 on A, p50', 'logout, p99', 'probe round trip (200), p50'], rows: side },
      ],
      notes: [
        `The goals are DESIGN.md's: refused by every other node within 100 ms at p99, aiming at ${REDIS_GOAL_MS} ms, measured across processes; within the poll interval with no bus.`,
        `Without a bus a node learns of the logout at its next poll: polls run at a fixed rate (setInterval), so the worst case is the interval plus one read of the head and the rows, plus the probe's round trip.`,
        `Client, three nodes and the services share this machine's ${cpus().length} cores.`,
      ],
    };
  });
}

// ---- refresh throughput ------------------------------------------------------------------

const REFRESH_SESSIONS = 200;
const REFRESH_LEVELS = [1, 16, 200];
const REFRESH_SLICE_MS = 2_500;
const REFRESH_ROUNDS = 2;

interface LoadResult {
  ops: number;
  ms: number;
  latencies: number[];
  errors: number;
}

/** `concurrency` workers, each refreshing its own share of the chains one after another, for `ms`. */
async function refreshLoad(node: LatchNode, chains: string[], concurrency: number, ms: number): Promise<LoadResult> {
  const result: LoadResult = { ops: 0, ms: 0, latencies: [], errors: 0 };
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const mine = chains.map((_, i) => i).filter((i) => i % concurrency === w);
      for (let k = 0; performance.now() < deadline; k += 1) {
        const i = mine[k % mine.length]!;
        const r = await refresh(node, chains[i]!);
        if (r.status !== 200) {
          result.errors += 1;
          throw new Error(`refresh on ${node.name}: ${r.status} ${r.text}`);
        }
        chains[i] = String(r.body!.refresh_token);
        result.ops += 1;
        result.latencies.push(r.ms);
      }
    }),
  );
  result.ms = performance.now() - started;
  return result;
}

async function runRefresh(progress: (line: string) => void): Promise<Section> {
  return withServices(async (s) => {
    progress('  starting a PostgreSQL node and a SQLite node…');
    const [pgNodes, sqliteNodes] = await Promise.all([
      startNodes(['postgres'], clusterEnv(await s.database(), undefined)),
      startNodes(['sqlite'], { LATCH_MASTER_KEY: masterKey(), LATCH_LOG_LEVEL: 'warn', LATCH_RATE_LIMITS: 'off' }),
    ]);
    const targets = [
      { label: 'PostgreSQL', node: pgNodes[0]! },
      { label: 'SQLite', node: sqliteNodes[0]! },
    ];
    for (const t of targets) s.cleanup.add(() => t.node.stop());
    const chains = new Map<string, string[]>();
    for (const t of targets) {
      await register(t.node, USER);
      progress(`  ${t.label}: logging in ${REFRESH_SESSIONS} sessions…`);
      chains.set(t.label, (await sessions([t.node], REFRESH_SESSIONS)).map((x) => x.refresh_token));
      await refreshLoad(t.node, chains.get(t.label)!, 16, 1_000); // warm-up
    }
    const results = new Map<string, LoadResult>();
    for (const level of REFRESH_LEVELS) {
      for (let round = 0; round < REFRESH_ROUNDS; round += 1) {
        // alternated, so drift on the machine lands on both
        for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
          const r = await refreshLoad(t.node, chains.get(t.label)!, level, REFRESH_SLICE_MS);
          const key = `${t.label}/${level}`;
          const acc = results.get(key) ?? { ops: 0, ms: 0, latencies: [], errors: 0 };
          acc.ops += r.ops;
          acc.ms += r.ms;
          acc.errors += r.errors;
          acc.latencies.push(...r.latencies);
          results.set(key, acc);
        }
      }
      progress(`  concurrency ${level} done`);
    }
    const rate = (r: LoadResult): number => (r.ops * 1000) / r.ms;
    const rows: string[][] = [];
    const ratios: string[][] = [];
    for (const level of REFRESH_LEVELS) {
      for (const t of targets) {
        const r = results.get(`${t.label}/${level}`)!;
        rows.push([t.label, level === 1 ? '1 (sequential)' : String(level), `${fmtInt(rate(r))}/s`, fmtMs(percentile(r.latencies, 50)), fmtMs(percentile(r.latencies, 99)), fmtInt(r.ops), fmtInt(r.errors)]);
      }
      const pgRate = rate(results.get(`PostgreSQL/${level}`)!);
      const sqliteRate = rate(results.get(`SQLite/${level}`)!);
      ratios.push([level === 1 ? '1 (sequential)' : String(level), (pgRate / sqliteRate).toFixed(2)]);
    }
    return {
      title: 'Cluster: refresh throughput, PostgreSQL node vs SQLite node',
      method: [
        `One \`latch serve\` node on ${s.postgresNote}, one on SQLite (WAL, synchronous=NORMAL) in a temp dir; both on this machine, measured in the same run.`,
        `${REFRESH_SESSIONS} sessions per node; POST /v1/refresh over loopback fetch, each session's chain rotated one refresh at a time (no replays).`,
        `Per concurrency level: ${REFRESH_ROUNDS} rounds of ${REFRESH_SLICE_MS / 1000} s per node, alternated (PG, SQLite, SQLite, PG); latency is the client's, request to whole body.`,
      ],
      tables: [
        { columns: ['store', 'concurrent requests', 'refreshes', 'p50', 'p99', 'requests', 'errors'], rows },
        { columns: ['concurrent requests', 'PostgreSQL / SQLite'], rows: ratios },
      ],
      notes: [
        'A refresh is one transaction: look up the token, lock the session row, mark the token used, insert its successor, update the session, then sign an ES256 access token.',
        `The load generator runs on the same ${cpus().length} cores as the node and the database, so these are lower bounds for a node of its own.`,
      ],
    };
  });
}

// ---- catch-up after a Redis outage -------------------------------------------------------

const CATCHUP_TRIALS: { kind: 'paused' | 'killed'; trials: number }[] = [
  { kind: 'paused', trials: 3 },
  { kind: 'killed', trials: 2 },
];

interface CatchupTrial {
  kind: 'paused' | 'killed';
  logoutMs: number;
  /** ms from the logout's 204 to B's and C's first 401, while Redis was away */
  duringOutage: (number | null)[];
  /** ms from Redis's return until B and C refused the outage's logout (0: they already did) */
  catchup: number[];
  /** ms from Redis's return until the three nodes were subscribed again */
  resubscribed: number;
  /** the first logout after Redis's return: ms from its 204 to B's and C's first 401 */
  afterReturn: number[];
}

async function untilSubscribed(redis: PrivateRedis, channel: string, count: number, withinMs = 20_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    const n = await redis.subscribers(channel).catch(() => NaN);
    if (n === count) return performance.now() - started;
    if (performance.now() - started > withinMs) throw new Error(`${n} of ${count} nodes subscribed ${withinMs} ms after Redis came back`);
    await sleep(10);
  }
}

async function runCatchup(progress: (line: string) => void): Promise<Section> {
  return withServices(async (s) => {
    const env = clusterEnv(await s.database(), s.redis.url);
    const channel = `${env.LATCH_REDIS_PREFIX}revocations`;
    const nodes = await cluster(s, env);
    const [a, b, c] = nodes as [LatchNode, LatchNode, LatchNode];
    await register(a, USER);
    await untilSubscribed(s.redis, channel, 3);
    const trials: CatchupTrial[] = [];
    for (const { kind, trials: count } of CATCHUP_TRIALS) {
      for (let i = 0; i < count; i += 1) {
        const [during, after] = await sessions(nodes, 2);
        for (const t of [during!, after!]) for (const n of [b, c]) await expectStatus(n, t.access_token, 200);
        const outage = performance.now();
        if (kind === 'paused') s.redis.pause();
        else await s.redis.kill();
        let back = 0;
        try {
          await sleep(1_000);
          const out = await logout(a, during!.access_token);
          const since = performance.now();
          if (out.status !== 204) throw new Error(`logout during the outage: ${out.status} ${out.text}`);
          const duringOutage = await Promise.all([b, c].map((n) => untilRefused(n, during!.access_token, since, OUTAGE_MS - 1_500)));
          await sleep(Math.max(0, outage + OUTAGE_MS - performance.now()));
          if (kind === 'paused') s.redis.resume();
          else await s.redis.start();
          back = performance.now();
          const catchup = await Promise.all(
            [b, c].map(async (n) => {
              const t = await untilRefused(n, during!.access_token, back, PROBE_LIMIT_MS);
              if (t === null) throw new Error(`${n.name} still accepts a logout made during the outage`);
              return duringOutage[[b, c].indexOf(n)] !== null ? 0 : t;
            }),
          );
          const resubscribed = await untilSubscribed(s.redis, channel, 3);
          const out2 = await logout(a, after!.access_token);
          const since2 = performance.now();
          if (out2.status !== 204) throw new Error(`logout after the outage: ${out2.status} ${out2.text}`);
          const afterReturn = await Promise.all([b, c].map((n) => untilRefused(n, after!.access_token, since2, PROBE_LIMIT_MS)));
          if (afterReturn.some((t) => t === null)) throw new Error('a logout after the outage was not refused everywhere');
          trials.push({ kind, logoutMs: out.ms, duringOutage, catchup, resubscribed, afterReturn: afterReturn as number[] });
          progress(`  Redis ${kind}: trial ${i + 1}/${count}`);
        } finally {
          if (back === 0) {
            if (kind === 'paused') s.redis.resume();
            else await s.redis.start().catch(() => {});
          }
        }
        await sleep(500);
      }
    }
    const cell = (xs: (number | null)[]): string => xs.map((x) => (x === null ? 'not yet' : fmtMs(x))).join(' / ');
    const rows = trials.map((t, i) => [
      `${t.kind === 'paused' ? 'SIGSTOP' : 'SIGKILL + restart'} #${trials.slice(0, i + 1).filter((x) => x.kind === t.kind).length}`,
      fmtMs(t.logoutMs),
      cell(t.duringOutage),
      cell(t.catchup),
      fmtMs(t.resubscribed),
      cell(t.afterReturn),
    ]);
    const worst = Math.max(...trials.flatMap((t) => t.duringOutage.map((x) => x ?? Infinity)));
    return {
      title: 'Cluster: catch-up after a 5 s Redis outage',
      method: [
        `3 nodes on ${s.postgresNote} and a private redis-server; LATCH_POLL_INTERVAL=${POLL_INTERVAL_MS}.`,
        `Per trial: Redis is paused (SIGSTOP, then SIGCONT) or killed (SIGKILL, then started again on the same port) for ${OUTAGE_MS / 1000} s; 1 s in, a session is logged out on A;`,
        'B and C are probed with GET /v1/me until they refuse it. After Redis returns: whether they refuse it, when all three nodes are subscribed again (PUBSUB NUMSUB),',
        'and how fast the first logout after the return reaches B and C.',
      ],
      tables: [
        {
          columns: ['outage', 'logout 204 on A during it', 'refused during the outage, B / C (from the 204)', 'catch-up after Redis returns, B / C', 'nodes resubscribed after', 'next logout refused, B / C'],
          rows,
        },
      ],
      notes: [
        `Catch-up is 0 when a node had already refused the logout before Redis came back: the ${POLL_INTERVAL_MS} ms poll of the log's high-water mark applied it during the outage (slowest: ${fmtMs(worst)} after the 204).`,
        'A paused Redis keeps its TCP connections, so the nodes are still subscribed when it resumes; a killed one drops them, and the nodes reconnect with a growing delay (100 ms per attempt, at most 2 s).',
        `Goal (DESIGN.md): no revocation is lost when Redis drops and comes back: ${trials.length} of ${trials.length} outage logouts refused by B and C, ${goal(trials.every((t) => t.duringOutage.every((x) => x !== null)))} within the outage itself.`,
      ],
    };
  });
}

export const clusterParts: Part[] = [
  { name: 'propagation', summary: "a logout's 204 on node A to the first 401 on B and C, with and without Redis", run: runPropagation },
  { name: 'refresh', summary: 'refresh throughput: a PostgreSQL node vs a SQLite node', run: runRefresh },
  { name: 'catchup', summary: 'logouts during a 5 s Redis outage (paused, killed): refusal and catch-up', run: runCatchup },
];
