// `npm run bench -- verify`: what `latch/verify` costs a resource server, against a real Latch
// server in a child process (SQLite, HTTP on loopback):
//   verifier     — verifier.verify() vs bare node:crypto ES256 and jose's jwtVerify, on one reused
//                  token and on tokens it has never seen, with 0 and 1,000,000 live revocation
//                  entries (fed through the real event stream); heap bytes per entry
//   propagation  — a logout's 204 to the verifier's first refusal, p50 and p99 over 50 trials
//   rps          — a protected Fastify route (examples/resource-server) against the same route without auth
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { importJWK, jwtVerify } from 'jose';
import { createVerifier, type Verifier } from 'latch/verify';
import { openLatch, type Opened } from '../src/compose.ts';
import { loadConfig } from '../src/config.ts';
import { randomId } from '../src/core/secrets.ts';
import type { Part } from './core.ts';
import { fmtInt, fmtMs, fmtOps, fmtRange, fmtRatio, fmtUs, gc, median, percentile, runSlice, runSliceAsync, type Throughput } from './measure.ts';
import type { Section } from './report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'latch.js');
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
const PASSWORD = 'correct horse battery staple';

/** Keeps results observable so no step can be optimised away. */
let sink = 0;
const goal = (met: boolean): string => (met ? 'met' : 'NOT met');

// ---- a Latch server in its own process, a token mint on the same data directory ---------------

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Env {
  dir: string;
  issuer: string;
  client: { id: string; secret: string };
  /** openLatch on the server's data directory (no server): signs tokens with the same keys */
  mint: Opened;
  server: ChildProcess;
  close(): Promise<void>;
}

async function openEnv(progress: (line: string) => void): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'latch-bench-verify-'));
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  // env of its own: the caller's LATCH_* variables must not change what is measured
  const env = { PATH: process.env.PATH, LATCH_DATA_DIR: dir, LATCH_HOST: '127.0.0.1', LATCH_PORT: String(port), LATCH_RATE_LIMITS: 'off', LATCH_LOG_LEVEL: 'warn' };
  const added = spawnSync(process.execPath, [BIN, 'clients', 'add', 'bench-verifier', '--json'], { env, encoding: 'utf8' });
  if (added.status !== 0) throw new Error(`latch clients add failed: ${added.stderr}`);
  const client = JSON.parse(added.stdout) as { id: string; secret: string };
  progress(`  starting latch serve on ${issuer}`);
  const server = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor(async () => (await fetch(`${issuer}/readyz`)).ok, 30_000, 'latch serve');
  const mint = await openLatch(loadConfig({ env: {}, overrides: { dataDir: dir, issuer, logLevel: 'silent' } }), { serve: false });
  return {
    dir,
    issuer,
    client,
    mint,
    server,
    close: async () => {
      await mint.close();
      server.kill('SIGTERM');
      await new Promise((resolve) => (server.exitCode !== null ? resolve(null) : server.once('exit', resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `count` session ids shaped like Latch's (22-char base64url of 16 random bytes). */
function sessionIds(count: number): string[] {
  const ids = new Array<string>(count);
  const chunk = 4096;
  for (let i = 0; i < count; i += chunk) {
    const bytes = randomBytes(16 * chunk);
    for (let j = 0; j < chunk && i + j < count; j++) ids[i + j] = bytes.toString('base64url', 16 * j, 16 * j + 16);
  }
  return ids;
}

/**
 * Appends `count` live session rows to the log the way a burst of logouts would (in the store,
 * behind the server's back), so they reach the verifier through the server's poll and stream.
 */
function appendRevocations(dir: string, count: number): void {
  const db = new Database(join(dir, 'latch.db'));
  try {
    const now = Date.now();
    const expiresAt = now + 3_600_000;
    const ids = sessionIds(count);
    db.transaction(() => {
      const head = db.prepare('SELECT last_seq FROM revocation_head WHERE id = 1').get() as { last_seq: number };
      const insert = db.prepare("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (?, 'session', ?, ?, ?)");
      for (let i = 0; i < count; i++) insert.run(head.last_seq + i + 1, ids[i], expiresAt, now);
      db.prepare('UPDATE revocation_head SET last_seq = ? WHERE id = 1').run(head.last_seq + count);
    })();
  } finally {
    db.close();
  }
}

/** Heap plus ArrayBuffer memory (the verifier's fingerprint tables live outside the JS heap). */
const memoryAfterGc = (): number => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

// ---- verifier: per-call cost ------------------------------------------------------------------

const POOL = 4096;
const SLICE_MS = 100;
const SLICES = 10;
const ROUNDS = 5;
const FIRST_SEEN_BATCH = 8192;
const MILLION = 1_000_000;
const FIRST_SEEN_GOAL = 0.95;
const REUSED_GOAL = 10;
const ENTRY_COST_GOAL = 0.05;
const MEMORY_GOAL = 150;

interface Round {
  bare: number;
  jose: number;
  reused: number;
  firstSeen: number;
}

type Contender = { name: keyof Round; sync?: () => void; async?: () => Promise<void>; before?: () => void };

/** Every contender gets `SLICES` slices, alternated and rotated per round; the between-step runs outside the timing. */
async function measureRound(contenders: Contender[], rotation: number, between: () => Promise<void>): Promise<Round> {
  const totals = new Map<string, Throughput>(contenders.map((c) => [c.name, { ops: 0, ns: 0 }]));
  for (let s = 0; s < SLICES; s++) {
    for (let j = 0; j < contenders.length; j++) {
      const c = contenders[(j + s + rotation) % contenders.length]!;
      c.before?.();
      await between();
      // the garbage of signing a batch (or of the previous slice) is collected here, not on the next contender's clock
      gc();
      const t = c.sync ? runSlice(c.sync, POOL - 1, 0, SLICE_MS) : await runSliceAsync(c.async!, POOL - 1, 0, SLICE_MS);
      const total = totals.get(c.name)!;
      total.ops += t.ops;
      total.ns += t.ns;
    }
  }
  const ops = (name: keyof Round): number => (totals.get(name)!.ops * 1e9) / totals.get(name)!.ns;
  return { bare: ops('bare'), jose: ops('jose'), reused: ops('reused'), firstSeen: ops('firstSeen') };
}

async function runVerifier(progress: (line: string) => void): Promise<Section> {
  const env = await openEnv(progress);
  let verifier: Verifier | null = null;
  try {
    const { latch } = env.mint;
    verifier = await createVerifier({ issuer: env.issuer, audience: 'latch', client: env.client });
    const v = verifier;
    // flattened, as a token read from a request header is (a freshly concatenated string is a rope whose first read copies it)
    const issue = (): string => Buffer.from(latch.tokens.issue({ sub: randomId(), sid: randomId() }).token, 'latin1').toString('latin1');
    const pool = Array.from({ length: POOL }, issue);
    const reused = issue();

    // the baselines verify the same kind of token on a key imported once
    const jwk = latch.keyRing.jwks().keys.find((k) => k.kid === latch.keyRing.signingKey().kid)!;
    if (jwk.alg !== 'ES256') throw new Error('expected an ES256 signing key');
    const publicKey: KeyObject = createPublicKey({ key: jwk, format: 'jwk' });
    const inputs = pool.map((t) => Buffer.from(t.slice(0, t.lastIndexOf('.'))));
    const signatures = pool.map((t) => Buffer.from(t.slice(t.lastIndexOf('.') + 1), 'base64url'));
    const joseKey = await importJWK(jwk, 'ES256');
    const joseOptions = { issuer: env.issuer, audience: 'latch', algorithms: ['ES256'], typ: 'at+jwt' };

    // first-seen tokens: a fresh batch before each slice, each token verified once at most
    let fresh: string[] = [];
    let next = 0;
    let i = 0;
    const contenders: Contender[] = [
      {
        name: 'bare',
        sync: () => {
          const k = i++ & (POOL - 1);
          if (!verify('sha256', inputs[k]!, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signatures[k]!)) throw new Error('bare verify failed');
        },
      },
      { name: 'jose', async: async () => void (sink += ((await jwtVerify(pool[i++ & (POOL - 1)]!, joseKey, joseOptions)).payload.exp ?? 0) & 1) },
      { name: 'reused', async: async () => void (sink += (await v.verify(reused)).exp & 1) },
      {
        name: 'firstSeen',
        before: () => {
          fresh = Array.from({ length: FIRST_SEEN_BATCH }, issue);
          next = 0;
        },
        async: async () => {
          const token = fresh[next++];
          if (token === undefined) throw new Error('first-seen batch too small for a slice');
          sink += (await v.verify(token)).exp & 1;
        },
      },
    ];
    // the verifier's stream and the server's heartbeats run between slices, as between requests
    const between = async (): Promise<void> => {
      await new Promise((r) => setImmediate(r));
      if (!v.status().fresh) throw new Error('the verifier went stale during the benchmark');
    };

    progress('  verifier: warming up');
    await v.verify(reused);
    await v.verify(reused);
    await measureRound(contenders, 0, between);

    const rounds = new Map<number, Round[]>([
      [0, []],
      [MILLION, []],
    ]);
    for (let r = 0; r < ROUNDS; r++) {
      rounds.get(0)!.push(await measureRound(contenders, r, between));
      progress(`  verifier: round ${r + 1}/${ROUNDS} at 0 entries`);
    }

    progress(`  verifier: appending ${fmtInt(MILLION)} session rows to the log; they reach the verifier through the stream`);
    const heapBefore = memoryAfterGc();
    const fedAt = performance.now();
    appendRevocations(env.dir, MILLION);
    await waitForEntries(v, MILLION, 180_000);
    const fedMs = performance.now() - fedAt;
    const heapAfter = memoryAfterGc();
    const bytesPerEntry = (heapAfter - heapBefore) / MILLION;
    progress(`  verifier: ${fmtInt(v.status().revokedSessions)} entries after ${(fedMs / 1000).toFixed(1)} s, ${bytesPerEntry.toFixed(1)} bytes each`);
    for (let r = 0; r < ROUNDS; r++) {
      rounds.get(MILLION)!.push(await measureRound(contenders, r, between));
      progress(`  verifier: round ${r + 1}/${ROUNDS} at ${fmtInt(MILLION)} entries`);
    }

    const med = (level: number, f: (r: Round) => number): number => median(rounds.get(level)!.map(f));
    const ratios = (level: number, f: (r: Round) => number): number[] => rounds.get(level)!.map((r) => f(r) / r.bare);
    const rows = [0, MILLION].map((level) => {
      const first = ratios(level, (r) => r.firstSeen);
      const reuse = ratios(level, (r) => r.reused);
      const jose = ratios(level, (r) => r.jose);
      return [
        fmtInt(level),
        fmtOps(med(level, (r) => r.bare)),
        fmtOps(med(level, (r) => r.jose)),
        fmtOps(med(level, (r) => r.firstSeen)),
        fmtOps(med(level, (r) => r.reused)),
        `${fmtRatio(median(jose))}`,
        `${fmtRatio(median(first))} (${fmtRange(first, fmtRatio)})`,
        goal(median(first) >= FIRST_SEEN_GOAL),
        `${median(reuse).toFixed(1)}× (${fmtRange(reuse, (n) => n.toFixed(1))})`,
        goal(median(reuse) >= REUSED_GOAL),
      ];
    });
    // a first-seen check's cost at 1M entries over its cost at 0, each against the bare verify of its round
    const entryCost = median(ratios(0, (r) => r.firstSeen)) / median(ratios(MILLION, (r) => r.firstSeen)) - 1;
    const us = (ops: number): string => fmtUs(1e6 / ops);
    return {
      title: 'latch/verify: verifier.verify() vs bare node:crypto ES256 and jose jwtVerify',
      method: [
        'Latch serves from a child process (latch serve, SQLite); the verifier runs in this process and follows its event stream over loopback.',
        `bare = crypto.verify(sha256, input, { key, dsaEncoding: ieee-p1363 }, sig) on ${fmtInt(POOL)} tokens decoded in advance, key imported once; jose = jwtVerify with a key imported once (WebCrypto), awaited.`,
        `reused = verifier.verify() of one token again and again (served by the cache of verified tokens, which still checks exp, freshness and revocation);`,
        `first-seen = verifier.verify() of tokens it has never seen, each verified once (a fresh batch of ${fmtInt(FIRST_SEEN_BATCH)} signed before every slice, outside the timing). verify() calls are awaited one at a time.`,
        `${ROUNDS} rounds per level, each giving every contender ${SLICES} × ${SLICE_MS} ms slices, alternated and rotated; figures are medians of the rounds, ratios against the bare verify of the same round.`,
        `The ${fmtInt(MILLION)} live entries are session rows appended to the store's log; the server read them (poll) and pushed them over the stream to the verifier.`,
      ],
      tables: [
        {
          columns: ['live entries', 'bare', 'jose', 'first-seen', 'reused', 'jose / bare', 'first-seen / bare', `goal ≥ ${FIRST_SEEN_GOAL}`, 'reused / bare', `goal ≥ ${REUSED_GOAL}×`],
          rows,
        },
        {
          columns: ['measure', 'figure', 'goal'],
          rows: [
            ['first-seen cost at 1M entries vs 0', `${entryCost >= 0 ? '+' : '−'}${Math.abs(entryCost * 100).toFixed(1)}%`, `≤ +${ENTRY_COST_GOAL * 100}%: ${goal(entryCost <= ENTRY_COST_GOAL)}`],
            ['memory per live entry in the verifier (1M entries)', `${bytesPerEntry.toFixed(1)} B`, `≤ ${MEMORY_GOAL} B: ${goal(bytesPerEntry <= MEMORY_GOAL)}`],
            ['1M rows from the store to the verifier (poll + stream)', `${(fedMs / 1000).toFixed(1)} s`, '—'],
          ],
        },
      ],
      notes: [
        `Per call at 0 entries: bare ${us(med(0, (r) => r.bare))}, first-seen ${us(med(0, (r) => r.firstSeen))}, reused ${us(med(0, (r) => r.reused))}, jose ${us(med(0, (r) => r.jose))}.`,
        `Memory growth (heapUsed + arrayBuffers) measured after two global.gc() before and after the rows arrived: ${((heapAfter - heapBefore) / 2 ** 20).toFixed(1)} MiB.`,
      ],
    };
  } finally {
    await verifier?.close();
    await env.close();
  }
}

async function waitForEntries(v: Verifier, count: number, timeoutMs: number): Promise<void> {
  await waitFor(async () => v.status().revokedSessions >= count && v.status().fresh, timeoutMs, `${count} entries in the verifier`);
}

// ---- propagation ------------------------------------------------------------------------------

const TRIALS = 50;
const PROPAGATION_GOAL_MS = 20;

async function runPropagation(progress: (line: string) => void): Promise<Section> {
  const env = await openEnv(progress);
  let verifier: Verifier | null = null;
  try {
    verifier = await createVerifier({ issuer: env.issuer, audience: 'latch', client: env.client });
    const v = verifier;
    const post = (path: string, body: unknown, token?: string): Promise<Response> =>
      fetch(`${env.issuer}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    if ((await post('/v1/users', { username: 'bench-propagation', password: PASSWORD })).status !== 201) throw new Error('sign-up failed');
    const samples: number[] = [];
    let early = 0;
    progress(`  propagation: ${TRIALS} trials`);
    for (let n = 0; n < TRIALS; n++) {
      const login = await post('/v1/login', { username: 'bench-propagation', password: PASSWORD });
      const { access_token: token } = (await login.json()) as { access_token: string };
      await v.verify(token);
      let refusedAt = 0;
      let answeredAt = 0;
      const watching = (async () => {
        for (;;) {
          try {
            await v.verify(token);
          } catch {
            refusedAt = performance.now();
            return;
          }
          await new Promise((r) => setImmediate(r));
        }
      })();
      const out = await post('/v1/logout', {}, token);
      answeredAt = performance.now();
      if (out.status !== 204) throw new Error(`logout answered ${out.status}`);
      await watching;
      // the event can arrive before this process has read the 204: that trial took no time after it
      if (refusedAt < answeredAt) early += 1;
      samples.push(Math.max(0, refusedAt - answeredAt));
      if ((n + 1) % 10 === 0) progress(`  propagation: ${n + 1}/${TRIALS}`);
    }
    const p99 = percentile(samples, 99);
    return {
      title: 'Propagation: logout 204 → first refusal by latch/verify in another process',
      method: [
        'Latch serves from a child process; the verifier runs in this process, connected to its event stream over loopback.',
        `${TRIALS} trials: log in, verify the token, verify it in a loop (yielding to the event loop between calls) while POST /v1/logout runs;`,
        'the figure is the time from reading the 204 to the first refusal (0 when the refusal came first).',
      ],
      tables: [
        {
          columns: ['trials', 'p50', 'p99', 'max', `goal p99 ≤ ${PROPAGATION_GOAL_MS} ms`],
          rows: [[String(TRIALS), fmtMs(percentile(samples, 50)), fmtMs(p99), fmtMs(Math.max(...samples)), goal(p99 <= PROPAGATION_GOAL_MS)]],
        },
      ],
      notes: [`${early} of ${TRIALS} refusals came before the 204 was read.`],
    };
  } finally {
    await verifier?.close();
    await env.close();
  }
}

// ---- requests per second ----------------------------------------------------------------------

const RPS_ROUNDS = 4;
const RPS_SECONDS = 3;
const CONNECTIONS = 32;

async function startExample(env: Env): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [TSX, join(ROOT, 'examples', 'resource-server', 'fastify.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, LATCH_ISSUER: env.issuer, LATCH_CLIENT_ID: env.client.id, LATCH_CLIENT_SECRET: env.client.secret, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 30_000, 'the example resource server');
  return { url, child };
}

async function cannon(url: string, headers: Record<string, string>, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
  const non2xx = result.non2xx + result.errors + result.timeouts;
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: non2xx };
}

async function runRps(progress: (line: string) => void): Promise<Section> {
  const env = await openEnv(progress);
  let example: { url: string; child: ChildProcess } | null = null;
  try {
    example = await startExample(env);
    const post = (path: string, body: unknown): Promise<Response> => fetch(`${env.issuer}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await post('/v1/users', { username: 'bench-rps', password: PASSWORD });
    const { access_token: token } = (await (await post('/v1/login', { username: 'bench-rps', password: PASSWORD })).json()) as { access_token: string };
    const protectedUrl = `${example.url}/api/hello`;
    const openUrl = `${example.url}/hello`;
    const auth = { authorization: `Bearer ${token}` };
    progress('  rps: warming up');
    await cannon(protectedUrl, auth, 1);
    await cannon(openUrl, auth, 1);
    const withAuth: Awaited<ReturnType<typeof cannon>>[] = [];
    const without: Awaited<ReturnType<typeof cannon>>[] = [];
    for (let r = 0; r < RPS_ROUNDS; r++) {
      // A B, B A, … so neither always runs second
      if (r % 2 === 0) {
        withAuth.push(await cannon(protectedUrl, auth, RPS_SECONDS));
        without.push(await cannon(openUrl, auth, RPS_SECONDS));
      } else {
        without.push(await cannon(openUrl, auth, RPS_SECONDS));
        withAuth.push(await cannon(protectedUrl, auth, RPS_SECONDS));
      }
      progress(`  rps: round ${r + 1}/${RPS_ROUNDS}`);
    }
    const errors = [...withAuth, ...without].reduce((n, x) => n + x.errors, 0);
    if (errors > 0) throw new Error(`${errors} requests failed or were not 2xx`);
    const row = (name: string, xs: typeof withAuth): string[] => [name, fmtOps(median(xs.map((x) => x.rps))), fmtMs(median(xs.map((x) => x.p50))), fmtMs(median(xs.map((x) => x.p99)))];
    const ratio = median(withAuth.map((x) => x.rps)) / median(without.map((x) => x.rps));
    const perRound = withAuth.map((x, r) => x.rps / without[r]!.rps);
    return {
      title: 'Requests per second: a Fastify route protected by latch/verify vs the same route without auth',
      method: [
        'examples/resource-server/fastify.ts in a child process (GET /api/hello behind verifier.fastify(), GET /hello the same handler without it), Latch in another;',
        `autocannon from this process, ${CONNECTIONS} connections, ${RPS_ROUNDS} rounds of ${RPS_SECONDS} s per route, alternated; one access token reused for every request, as a client does,`,
        'sent to both routes, so the difference is the verification and not the bytes of the header.',
      ],
      tables: [
        { columns: ['route', 'requests/s', 'latency p50', 'latency p99'], rows: [row('with latch/verify', withAuth), row('without auth', without)] },
        { columns: ['with / without', 'per round'], rows: [[fmtRatio(ratio), fmtRange(perRound, fmtRatio)]] },
      ],
      notes: [],
    };
  } finally {
    example?.child.kill('SIGTERM');
    await env.close();
  }
}

export const verifyParts: Part[] = [
  { name: 'verify-check', summary: 'verifier.verify() vs bare ES256 and jose: reused and first-seen tokens, 0 and 1M live entries; memory per entry', run: runVerifier },
  { name: 'verify-propagation', summary: 'logout 204 → first refusal by latch/verify, p50/p99 over 50 trials', run: runPropagation },
  { name: 'verify-rps', summary: 'autocannon: a route protected by latch/verify vs the same route without auth', run: runRps },
];
