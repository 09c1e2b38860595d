// The core suite: the goals of DESIGN.md "What good looks like, measured" that live in src/core.
//   check  — latch.authenticate against a bare node:crypto ES256 verification of the same tokens,
//            with 0, 100,000 and 1,000,000 live revocation entries
//   login  — latch.login against one raw argon2id verification with the same parameters
//   memory — heap bytes per live revocation entry at 1,000,000 entries
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import { createPublicKey, randomBytes, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { AccessClaims } from '../src/core/tokens.ts';
import { ARGON2_OPTIONS } from '../src/core/passwords.ts';
import { RevocationState } from '../src/core/revocation.ts';
import { randomId } from '../src/core/secrets.ts';
import { openBenchLatch } from './fixture.ts';
import {
  fmtInt,
  fmtMs,
  fmtOps,
  fmtPct,
  fmtRange,
  fmtRatio,
  fmtUs,
  gc,
  interleave,
  mean,
  median,
  percentile,
  runSlice,
  type Contender,
  type ContenderResult,
} from './measure.ts';
import type { Section } from './report.ts';

export interface Part {
  name: string;
  /** one line for the usage text */
  summary: string;
  run(progress: (line: string) => void): Promise<Section>;
}

/** Keeps results observable so no step can be optimised away. */
let sink = 0;

const goal = (met: boolean): string => (met ? 'met' : 'NOT met');

// ---- check ------------------------------------------------------------------------------------

const POOL_SIZE = 4096;
const ROUNDS = 9;
const SLICE_MS = 100;
/** slices per contender per round and level: 10 × 100 ms = 1 s */
const SLICES = 10;
/** unmeasured slices per contender after each fill */
const SETTLE_SLICES = 5;
/** ms of the tight-loop lookup probe per level */
const LOOKUP_MS = 200;
const VERIFY_ROUNDS = 3;
const JOSE_ROUNDS = 3;
const JOSE_SLICES = 5;
const LEVELS = [0, 100_000, 1_000_000];
const MOST_ENTRIES = Math.max(...LEVELS);
const CHECK_GOAL = 0.95;
const ENTRY_COST_GOAL = 0.05;
const LIVE_ENTRY_TTL_MS = 3_600_000;

/** `count` session ids shaped like Latch's (22-char base64url of 16 random bytes), drawn in chunks for speed. */
function sessionIds(count: number): string[] {
  const ids: string[] = new Array<string>(count);
  const chunk = 4096;
  for (let i = 0; i < count; i += chunk) {
    const bytes = randomBytes(16 * chunk);
    for (let j = 0; j < chunk && i + j < count; j++) ids[i + j] = bytes.toString('base64url', 16 * j, 16 * j + 16);
  }
  return ids;
}

interface JoseLike {
  importJWK(jwk: JsonWebKey, alg: string): Promise<unknown>;
  jwtVerify(jwt: string, key: unknown, options: { issuer: string; audience: string; algorithms: string[]; typ: string }): Promise<unknown>;
}

const isJose = (value: unknown): value is JoseLike =>
  typeof value === 'object' && value !== null && typeof Reflect.get(value, 'jwtVerify') === 'function' && typeof Reflect.get(value, 'importJWK') === 'function';

/** jose is not a dependency of Latch: measured for reference only when something installed it. */
async function loadJose(): Promise<JoseLike | null> {
  const specifier = 'jose';
  try {
    const mod: unknown = await import(specifier);
    return isJose(mod) ? mod : null;
  } catch {
    return null;
  }
}

/** One round at one level: each contender's throughput and GC pause per operation. */
type Round = Map<string, ContenderResult>;

async function runCheck(progress: (line: string) => void): Promise<Section> {
  const bench = await openBenchLatch();
  try {
    const { latch } = bench;
    const issued: { token: string; claims: AccessClaims }[] = [];
    for (let i = 0; i < POOL_SIZE; i++) issued.push(latch.tokens.issue({ sub: randomId(), sid: randomId() }));
    const tokens = issued.map((t) => t.token);
    const sids = new Set(issued.map((t) => t.claims.sid));
    if (sids.size !== POOL_SIZE) throw new Error('token pool: session ids are not distinct');

    // the baseline: the signature only, on inputs decoded ahead of time and a key imported once
    const jwk = latch.keyRing.jwks().keys.find((k) => k.kid === latch.keyRing.signingKey().kid);
    if (!jwk || jwk.alg !== 'ES256') throw new Error('expected an ES256 signing key');
    const publicKey: KeyObject = createPublicKey({ key: jwk, format: 'jwk' });
    const signingInputs = tokens.map((t) => Buffer.from(t.slice(0, t.lastIndexOf('.'))));
    const signatures = tokens.map((t) => Buffer.from(t.slice(t.lastIndexOf('.') + 1), 'base64url'));

    const entryIds = sessionIds(MOST_ENTRIES);
    if (entryIds.some((id) => sids.has(id))) throw new Error('a live entry matches a token: lookups must miss');

    const bare: Contender = {
      name: 'bare',
      step: (i) => {
        if (!verify('sha256', signingInputs[i]!, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signatures[i]!)) throw new Error('bare verify failed');
      },
    };
    const tokensVerify: Contender = { name: 'verify', step: (i) => void (sink += latch.tokens.verify(tokens[i]!).claims.sid.length) };
    const authenticate: Contender = { name: 'authenticate', step: (i) => void (sink += latch.authenticate(tokens[i]!).sessionId.length) };

    // a server's poll runs between requests; here between cycles of slices, outside the timing
    const freshen = async (): Promise<void> => {
      await latch.revocations.wake();
      if (!latch.revocations.isFresh()) throw new Error('revocation state is stale');
    };

    const state = latch.revocations.state;
    if (state.size !== 0) throw new Error('expected an empty revocation state');
    /** Empties the state and applies `count` live session rows, the first `count` of entryIds. */
    const fillTo = (count: number): void => {
      state.clear();
      const now = Date.now();
      for (let i = 0; i < count; i++) state.apply({ kind: 'session', target: entryIds[i]!, expiresAt: now + LIVE_ENTRY_TTL_MS }, now);
    };

    // rounds[r].get(level): every level is measured in every round, in a rotating order, so a
    // change in the machine over the run cannot pass for a cost of the entries
    const rounds: Map<number, Round>[] = [];
    const sidList = [...sids];
    /** ns per revocation lookup that misses, in a tight loop, per level */
    const lookupNs = new Map<number, number>();
    for (let r = 0; r < ROUNDS; r++) {
      const round = new Map<number, Round>();
      for (let k = 0; k < LEVELS.length; k++) {
        const level = LEVELS[(r + k) % LEVELS.length]!;
        fillTo(level);
        // the same pair at every level: a third contender at one level only would change what
        // runs next to each slice (caches, who triggers the scavenges) and pass for a cost
        const contenders = [bare, authenticate];
        // a full collection after the fill, then unmeasured slices: the first scavenge after a full
        // collection is several times slower than the rest and would land on whoever runs next
        gc();
        await interleave(contenders, { sliceMs: SLICE_MS, slices: SETTLE_SLICES, poolSize: POOL_SIZE, between: freshen });
        const result = await interleave(contenders, { sliceMs: SLICE_MS, slices: SLICES, poolSize: POOL_SIZE, between: freshen, rotation: r });
        if (latch.revocations.state !== state || state.size !== level) throw new Error('the revocation state changed under the benchmark');
        round.set(level, result);
        if (r === 0) {
          const t = runSlice((i) => void (sink += state.isSessionRevoked(sidList[i]!) ? 1 : 0), POOL_SIZE - 1, 0, LOOKUP_MS);
          lookupNs.set(level, t.ns / t.ops);
        }
        progress(`  check: round ${r + 1}/${ROUNDS}, ${fmtInt(level)} entries: authenticate/bare ${fmtRatio(result.get('authenticate')!.opsPerSecond / result.get('bare')!.opsPerSecond)}`);
      }
      rounds.push(round);
    }
    state.clear();
    entryIds.length = 0;
    gc();

    // signature + claims without the revocation step, in its own interleave with the baseline
    progress('  check: tokens.verify');
    const verifyRatios: number[] = [];
    for (let r = 0; r < VERIFY_ROUNDS; r++) {
      const round = await interleave([bare, tokensVerify], { sliceMs: SLICE_MS, slices: SLICES, poolSize: POOL_SIZE, between: freshen, rotation: r });
      verifyRatios.push(round.get('verify')!.opsPerSecond / round.get('bare')!.opsPerSecond);
    }

    let joseNote: string;
    const jose = await loadJose();
    if (jose) {
      const joseKey = await jose.importJWK(jwk, 'ES256');
      const joseOptions = { issuer: latch.settings.issuer, audience: latch.settings.audience, algorithms: ['ES256'], typ: 'at+jwt' };
      const joseVerify: Contender = { name: 'jose', stepAsync: async (i) => void (sink += (await jose.jwtVerify(tokens[i]!, joseKey, joseOptions)) ? 1 : 0) };
      progress('  check: jose jwtVerify (reference)');
      const ratios: number[] = [];
      for (let r = 0; r < JOSE_ROUNDS; r++) {
        const round = await interleave([bare, joseVerify], { sliceMs: SLICE_MS, slices: JOSE_SLICES, poolSize: POOL_SIZE, rotation: r });
        ratios.push(round.get('jose')!.opsPerSecond / round.get('bare')!.opsPerSecond);
      }
      joseNote =
        `jose jwtVerify (reference; WebCrypto key, signature + claims, no revocation, awaited one at a time; ${JOSE_ROUNDS} rounds × ${JOSE_SLICES} slices): ` +
        `${fmtRatio(median(ratios))} of bare (per round ${fmtRange(ratios, fmtRatio)}).`;
    } else {
      joseNote = 'jose jwtVerify: skipped, the `jose` package is not importable (it is not a dependency of Latch).';
    }

    const results = (level: number): Round[] => rounds.map((r) => r.get(level)!);
    const ops = (level: number, name: string): number[] => results(level).map((r) => r.get(name)!.opsPerSecond);
    const gcUs = (level: number, name: string): number => mean(results(level).map((r) => r.get(name)!.gcNsPerOp)) / 1000;
    const ratioOf = (r: Round, name: string): number => r.get(name)!.opsPerSecond / r.get('bare')!.opsPerSecond;
    const ratios = (level: number): number[] => results(level).map((r) => ratioOf(r, 'authenticate'));
    const ratio = (level: number): number => median(ratios(level));
    // time per check at a level over time per check at 0 entries in the same round, each against the bare verify beside it
    const costs = (level: number): number[] => rounds.map((r) => ratioOf(r.get(0)!, 'authenticate') / ratioOf(r.get(level)!, 'authenticate') - 1);

    // µs per check from the bare verify's time and the ratios, so the split follows the same medians
    const usBare = 1e6 / median(ops(0, 'bare'));
    const usVerify = usBare / median(verifyRatios);
    const usAuth = usBare / ratio(0);

    return {
      title: 'Per-request check: latch.authenticate vs bare node:crypto ES256 verify',
      method: [
        `${fmtInt(POOL_SIZE)} distinct ES256 access tokens from latch.tokens.issue (real Latch: openLatch, SQLite, default settings), each reused every ${fmtInt(POOL_SIZE)} checks.`,
        'bare = crypto.verify(sha256, signing input, { key, dsaEncoding: ieee-p1363 }, signature) on inputs decoded in advance, key imported once;',
        'latch.authenticate = latch.tokens.verify (signature + claims) + freshness + revocation lookups.',
        `Live entries: session rows applied to latch.revocations.state with state.apply, future expiry, none matching a token. ${ROUNDS} rounds, each measuring every level`,
        `in turn (rotating order; state rebuilt, gc, ${SETTLE_SLICES} unmeasured slices), where bare and authenticate get ${SLICES} × ${SLICE_MS} ms slices each, alternated A B A B ….`,
        'Figures are medians of the rounds; cost vs 0 entries compares the authenticate/bare ratios of the same round.',
      ],
      tables: [
        {
          columns: ['live entries', 'bare verify', 'latch.authenticate', 'authenticate / bare', 'per round', `goal ≥ ${CHECK_GOAL}`],
          rows: LEVELS.map((level) => [
            fmtInt(level),
            fmtOps(median(ops(level, 'bare'))),
            fmtOps(median(ops(level, 'authenticate'))),
            fmtRatio(ratio(level)),
            fmtRange(ratios(level), fmtRatio),
            goal(ratio(level) >= CHECK_GOAL),
          ]),
        },
        {
          columns: ['live entries', 'cost per check vs 0 entries', 'per round', 'GC pause per check: bare / authenticate', `goal ≤ ${fmtPct(ENTRY_COST_GOAL)}`],
          rows: LEVELS.map((level) => [
            fmtInt(level),
            level === 0 ? '—' : fmtPct(median(costs(level))),
            level === 0 ? '—' : fmtRange(costs(level), fmtPct),
            `${fmtUs(gcUs(level, 'bare'))} / ${fmtUs(gcUs(level, 'authenticate'))}`,
            level === 0 ? '' : goal(median(costs(level)) <= ENTRY_COST_GOAL),
          ]),
        },
      ],
      notes: [
        `latch.tokens.verify alone (signature + claims, no revocation step; ${VERIFY_ROUNDS} rounds of its own against bare): ${fmtRatio(median(verifyRatios))} of bare (per round ${fmtRange(verifyRatios, fmtRatio)}).`,
        `Per check at 0 entries, from the median ratios: bare ${fmtUs(usBare)}, tokens.verify ${fmtUs(usVerify)}, authenticate ${fmtUs(usAuth)}; ` +
          `authenticate − bare = ${fmtUs(usAuth - usBare)}, of which GC pauses ≈ ${fmtUs(gcUs(0, 'authenticate') - gcUs(0, 'bare'))} (pauses are counted in the slice they interrupt).`,
        `One revocation lookup that misses, alone in a tight loop (a lower bound): ${LEVELS.map((l) => `${fmtInt(lookupNs.get(l)!)} ns at ${fmtInt(l)} entries`).join(', ')}.`,
        'Goal for 100,000 entries from the issue; DESIGN.md states the same 5% for 1,000,000.',
        joseNote,
      ],
    };
  } finally {
    await bench.close();
  }
}

// ---- login ------------------------------------------------------------------------------------

const LOGIN_ITERATIONS = 200;
const LOGIN_WARMUP = 10;
const LOGIN_GOAL = 0.1;
const USERNAME = 'bench.user';
const PASSWORD = 'correct horse battery staple';

const IDLE_MS = 10;
const IDLE_SAMPLES = 100;

/** p50 µs of a small synchronous step when the thread is busy vs right after it slept IDLE_MS (as during a hash). */
async function postIdleCost(step: () => void): Promise<{ warmUs: number; afterIdleUs: number }> {
  const time = (): number => {
    const start = process.hrtime.bigint();
    step();
    return Number(process.hrtime.bigint() - start) / 1000;
  };
  const warm: number[] = [];
  const afterIdle: number[] = [];
  for (let i = 0; i < IDLE_SAMPLES; i++) {
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    afterIdle.push(time());
    time();
    warm.push(time());
  }
  return { warmUs: percentile(warm, 50), afterIdleUs: percentile(afterIdle, 50) };
}

/** "$argon2id$v=19$m=19456,t=2,p=1" of a PHC string. */
const phcParams = (phc: string): string => phc.split('$').slice(0, 4).join('$');

async function runLogin(progress: (line: string) => void): Promise<Section> {
  const bench = await openBenchLatch();
  try {
    const { latch } = bench;
    await latch.register({ username: USERNAME, password: PASSWORD }, null);
    const stored = (await latch.findUser(USERNAME))?.passwordHash;
    if (!stored) throw new Error('the bench user was not created');
    const rawHash = await argon2Hash(PASSWORD, ARGON2_OPTIONS);
    if (phcParams(rawHash) !== phcParams(stored)) throw new Error(`hash parameters differ: ${phcParams(rawHash)} vs ${phcParams(stored)}`);

    const ctx = { ip: '127.0.0.1', userAgent: 'latch-bench' };
    const login = async (): Promise<void> => {
      sink += (await latch.login({ username: USERNAME, password: PASSWORD }, ctx)).access_token.length;
    };
    const raw = async (): Promise<void> => {
      if (!(await argon2Verify(rawHash, PASSWORD))) throw new Error('raw argon2 verify failed');
    };
    const timed = async (fn: () => Promise<void>): Promise<number> => {
      const start = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - start) / 1e6;
    };

    progress('  login: warming up');
    for (let i = 0; i < LOGIN_WARMUP; i++) {
      await login();
      await raw();
    }
    gc();
    const loginMs: number[] = [];
    const rawMs: number[] = [];
    for (let i = 0; i < LOGIN_ITERATIONS; i++) {
      // A B, B A, … so neither always runs right after the other
      if (i % 2 === 0) {
        loginMs.push(await timed(login));
        rawMs.push(await timed(raw));
      } else {
        rawMs.push(await timed(raw));
        loginMs.push(await timed(login));
      }
      if ((i + 1) % 50 === 0) progress(`  login: ${i + 1}/${LOGIN_ITERATIONS}`);
    }

    progress('  login: post-idle probe');
    const idle = await postIdleCost(() => void (sink += latch.tokens.issue({ sub: randomId(), sid: randomId() }).token.length));

    const overheadMean = mean(loginMs) / mean(rawMs) - 1;
    const overheadP50 = percentile(loginMs, 50) / percentile(rawMs, 50) - 1;
    const row = (name: string, ms: number[]): string[] => [name, fmtMs(mean(ms)), fmtMs(percentile(ms, 50)), fmtMs(percentile(ms, 99))];
    return {
      title: 'Login latency: latch.login vs one raw argon2id verify',
      method: [
        `${LOGIN_ITERATIONS} sequential latch.login calls for an existing user, interleaved (A B, B A, …) with ${LOGIN_ITERATIONS} @node-rs/argon2 verify calls`,
        `of a hash with the same parameters (ARGON2_OPTIONS: ${phcParams(rawHash)}); ${LOGIN_WARMUP} warm-up calls of each first.`,
      ],
      tables: [
        { columns: ['', 'mean', 'p50', 'p99'], rows: [row('argon2 verify (raw)', rawMs), row('latch.login', loginMs)] },
        {
          columns: ['login over hash', 'mean', 'p50', `goal ≤ ${fmtPct(LOGIN_GOAL)}`],
          rows: [['overhead', `${fmtPct(overheadMean)} (${fmtMs(mean(loginMs) - mean(rawMs))})`, `${fmtPct(overheadP50)} (${fmtMs(percentile(loginMs, 50) - percentile(rawMs, 50))})`, goal(overheadP50 <= LOGIN_GOAL)]],
        },
        {
          columns: ['one step of login', 'p50 warm', `p50 after ${IDLE_MS} ms idle`, 'slowdown'],
          rows: [['latch.tokens.issue', fmtUs(idle.warmUs), fmtUs(idle.afterIdleUs), `×${(idle.afterIdleUs / idle.warmUs).toFixed(1)}`]],
        },
      ],
      notes: [
        'Besides the hash (of the real stored hash: the user exists, so no dummy), login looks the user up, reads and clears its throttling counters, ' +
          'writes the session, its refresh token and a login.succeeded audit row in one SQLite transaction, and signs an ES256 access token and a device token.',
        'Goal judged on p50: the mean moves with a few slow outliers of either side.',
        `Sequential logins leave the main thread idle while each hash runs on the thread pool, so login's own steps run right after an idle spell; ` +
          `the last table shows what that does to one of them on this machine (${IDLE_SAMPLES} samples each).`,
      ],
    };
  } finally {
    await bench.close();
  }
}

// ---- memory -----------------------------------------------------------------------------------

const MEMORY_ENTRIES = 1_000_000;
const MEMORY_GOAL = 150;

/** Applies `count` session rows; the ids are made here and kept by the state only. */
function applySessions(state: RevocationState, count: number, nowMs: number): void {
  const chunk = 4096;
  const expiresAt = nowMs + LIVE_ENTRY_TTL_MS;
  for (let i = 0; i < count; i += chunk) {
    const bytes = randomBytes(16 * chunk);
    for (let j = 0; j < chunk && i + j < count; j++) state.apply({ kind: 'session', target: bytes.toString('base64url', 16 * j, 16 * j + 16), expiresAt }, nowMs);
  }
}

const heapAfterGc = (): number => {
  gc();
  gc();
  // the fingerprint table of the revocation set lives in an ArrayBuffer, outside the JS heap
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

async function runMemory(progress: (line: string) => void): Promise<Section> {
  progress(`  memory: applying ${fmtInt(MEMORY_ENTRIES)} session rows`);
  const state = new RevocationState();
  const before = heapAfterGc();
  applySessions(state, MEMORY_ENTRIES, Date.now());
  const after = heapAfterGc();
  if (state.size !== MEMORY_ENTRIES) throw new Error(`expected ${MEMORY_ENTRIES} entries, got ${state.size}`);
  const perEntry = (after - before) / MEMORY_ENTRIES;
  const sample = state.isSessionRevoked(randomId()); // keeps the state alive past the measurement
  state.clear();
  return {
    title: 'Memory per live revocation entry',
    method: [
      `A fresh RevocationState; heapUsed + arrayBuffers after two global.gc() before and after applying ${fmtInt(MEMORY_ENTRIES)} session rows`,
      'with expiry in the future, targets shaped like Latch session ids (22-char base64url of 16 random bytes), held by the state only.',
    ],
    tables: [
      {
        columns: ['live entries', 'memory growth', 'bytes / entry', `goal ≤ ${MEMORY_GOAL}`],
        rows: [[fmtInt(MEMORY_ENTRIES), `${((after - before) / 2 ** 20).toFixed(1)} MiB`, perEntry.toFixed(1), goal(perEntry <= MEMORY_GOAL)]],
      },
    ],
    notes: sample ? ['a random id was found in the state: ids are not random'] : [],
  };
}

export const coreParts: Part[] = [
  { name: 'check', summary: 'latch.authenticate vs bare node:crypto ES256 verify, with 0 / 100k / 1M live revocation entries', run: runCheck },
  { name: 'login', summary: 'latch.login vs one raw argon2id verify with the same parameters', run: runLogin },
  { name: 'memory', summary: 'heap bytes per live revocation entry at 1,000,000 entries', run: runMemory },
];
