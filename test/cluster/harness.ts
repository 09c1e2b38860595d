// Real processes for the multi-node tests and the cluster benchmark: Latch nodes started with
// `node bin/latch.js serve`, private redis-server and PostgreSQL instances that a test may pause,
// kill or restart (the shared services are used by other test files in parallel and are never
// touched), fresh databases on the shared PostgreSQL, and small fetch helpers over loopback.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'latch.js');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function randomName(prefix: string): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

export function masterKey(): string {
  return randomBytes(32).toString('base64url');
}

/** A port nothing listens on right now (the kernel's pick), for services that need a fixed one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// ---- everything started here is stopped on exit, even when a test or the runner dies -------

const children = new Set<ChildProcess>();
const postgresDirs = new Set<{ ctl: () => string[]; dataDir: string }>();
process.once('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pgDir of postgresDirs) spawnSync(pgDir.ctl()[0]!, [...pgDir.ctl().slice(1), 'stop', '-D', pgDir.dataDir, '-m', 'immediate'], { stdio: 'ignore' });
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGTERM, then SIGKILL after graceMs; resolves with how it ended. */
async function terminate(child: ChildProcess, graceMs = 5_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const done = exited(child);
  if (child.exitCode !== null || child.signalCode !== null) return done;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const result = await done;
  clearTimeout(timer);
  return result;
}

/** Keeps the last `max` characters a stream wrote (and keeps the pipe drained). */
function tail(stream: NodeJS.ReadableStream | null, max = 64 * 1024): { text: () => string; onData: (fn: (chunk: string) => void) => void } {
  let text = '';
  const listeners: ((chunk: string) => void)[] = [];
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-max);
    for (const fn of listeners) fn(chunk);
  });
  return { text: () => text, onData: (fn) => void listeners.push(fn) };
}

// ---- Redis -------------------------------------------------------------------------------

/** A redis-server of our own, on a fixed port so it can be killed and started again in place. */
export class PrivateRedis {
  private child: ChildProcess | null = null;
  private log = tail(null);

  private constructor(readonly port: number) {}

  static available(): boolean {
    return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child) throw new Error('redis is already running');
    const child = track(
      spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', tmpdir()], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    this.child = child;
    this.log = tail(child.stdout);
    tail(child.stderr);
    const deadline = Date.now() + 10_000;
    while (!this.log.text().includes('Ready to accept connections')) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${this.log.text()}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not start: ${this.log.text()}`);
      await sleep(20);
    }
  }

  /** SIGSTOP: the process holds its sockets but answers nothing (a hung or partitioned Redis). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGKILL: every connection drops at once (a crash). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const done = exited(child);
    child.kill('SIGKILL');
    await done;
  }

  /** One command on a fresh connection (RESP over a raw socket, so a test needs no client library). */
  async command(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      let reply = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`redis ${args[0]}: no reply`));
      }, 2_000);
      socket.connect(this.port, '127.0.0.1', () => {
        socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
      });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        reply += chunk;
        if (reply.endsWith('\r\n')) {
          clearTimeout(timer);
          socket.end();
          resolve(reply);
        }
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** How many connections are subscribed to the channel (PUBSUB NUMSUB). */
  async subscribers(channel: string): Promise<number> {
    const reply = await this.command('PUBSUB', 'NUMSUB', channel);
    const m = /:(\d+)\r\n$/.exec(reply);
    return m ? Number(m[1]) : NaN;
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}

// ---- PostgreSQL --------------------------------------------------------------------------

function postgresBin(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : null;
}

/** A PostgreSQL cluster of our own in a temp directory: stopped and started at will, removed after. */
export class PrivatePostgres {
  private running = false;
  private readonly record: { ctl: () => string[]; dataDir: string };

  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
    private readonly asPostgres: boolean,
  ) {
    this.record = { ctl: () => this.command('pg_ctl'), dataDir: this.dataDir };
  }

  /** Why a private PostgreSQL cannot run here, or null when it can. */
  static unavailableReason(): string | null {
    const bin = postgresBin();
    if (!bin) return 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin';
    if (userInfo().uid === 0 && spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status !== 0) {
      return 'initdb refuses to run as root and there is no postgres user to run it as';
    }
    return null;
  }

  static async start(options: { settings?: Record<string, string> } = {}): Promise<PrivatePostgres> {
    const reason = PrivatePostgres.unavailableReason();
    if (reason) throw new Error(reason);
    const asPostgres = userInfo().uid === 0;
    const dir = mkdtempSync(join(tmpdir(), 'latch-pg-'));
    if (asPostgres) {
      const ids = spawnSync('id', ['postgres'], { encoding: 'utf8' }).stdout;
      const uid = Number(/uid=(\d+)/.exec(ids)?.[1]);
      const gid = Number(/gid=(\d+)/.exec(ids)?.[1]);
      chownSync(dir, uid, gid);
    }
    const instance = new PrivatePostgres(postgresBin()!, dir, await freePort(), asPostgres);
    const init = spawnSync(instance.command('initdb')[0]!, [...instance.command('initdb').slice(1), '-D', instance.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync'], {
      encoding: 'utf8',
    });
    if (init.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`initdb failed (${init.status}): ${init.stderr}`);
    }
    instance.settings = options.settings ?? {};
    postgresDirs.add(instance.record);
    try {
      await instance.start();
    } catch (err) {
      await instance.destroy();
      throw err;
    }
    return instance;
  }

  private settings: Record<string, string> = {};

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  private command(name: string): string[] {
    const path = join(this.bin, name);
    return this.asPostgres ? ['runuser', '-u', 'postgres', '--', path] : [path];
  }

  private async ctl(args: string[]): Promise<void> {
    const [cmd, ...pre] = this.command('pg_ctl');
    const child = track(spawn(cmd!, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const out = tail(child.stdout);
    const err = tail(child.stderr);
    const { code } = await exited(child);
    if (code !== 0) throw new Error(`pg_ctl ${args.join(' ')} failed (${code}): ${out.text()} ${err.text()}`);
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const extra = Object.entries(this.settings)
      .map(([k, v]) => ` -c ${k}=${v}`)
      .join('');
    await this.ctl(['-D', this.dataDir, '-l', join(this.dir, 'server.log'), '-w', '-t', '30', '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1${extra}`, 'start']);
    this.running = true;
  }

  /** A fast shutdown: open connections are terminated, as in a restart or failover. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.ctl(['-D', this.dataDir, '-m', 'fast', '-w', '-t', '30', 'stop']);
    this.running = false;
  }

  async destroy(): Promise<void> {
    try {
      if (this.running) await this.ctl(['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already gone
    }
    this.running = false;
    postgresDirs.delete(this.record);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A fresh database on a PostgreSQL server (each cluster its own); drop() removes it, connections and all. */
export async function freshDatabase(serverUrl: string, prefix = 'latch_c_'): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = randomName(prefix);
  const admin = new pg.Client({ connectionString: serverUrl });
  admin.on('error', () => {});
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: serverUrl });
      c.on('error', () => {});
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

// ---- Latch nodes -------------------------------------------------------------------------

export type NodeEnv = Record<string, string | undefined>;

/** How a `latch serve` process ended before it listened. */
export interface BootFailure {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function nodeEnv(env: NodeEnv, dataDir: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: process.env.PATH, LATCH_PORT: '0', LATCH_LOG_LEVEL: 'warn', LATCH_DATA_DIR: dataDir };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** One `node bin/latch.js serve` process. */
export class LatchNode {
  private constructor(
    readonly name: string,
    readonly url: string,
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly stderrTail: { text: () => string; onData: (fn: (chunk: string) => void) => void },
    private readonly dataDir: string,
  ) {}

  /** Starts a node and resolves once it listens; rejects with its stderr when it exits first. */
  static async start(name: string, env: NodeEnv, timeoutMs = 60_000): Promise<LatchNode> {
    const dataDir = mkdtempSync(join(tmpdir(), `latch-node-${name}-`));
    const child = track(spawn(process.execPath, [BIN, 'serve'], { env: nodeEnv(env, dataDir), stdio: ['ignore', 'pipe', 'pipe'] }));
    tail(child.stdout);
    const stderr = tail(child.stderr);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`node ${name} did not listen within ${timeoutMs} ms: ${stderr.text()}`)), timeoutMs);
        const check = (): void => {
          const m = /latch: listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr.text());
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        };
        stderr.onData(check);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(Object.assign(new Error(`node ${name} exited (${code ?? signal}) before listening: ${stderr.text()}`), { code, signal, stderr: stderr.text() }));
        });
      });
      return new LatchNode(name, url, Number(new URL(url).port), child, stderr, dataDir);
    } catch (err) {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Runs `latch serve` expecting it to refuse to boot; resolves with its exit and stderr. */
  static async bootFailure(env: NodeEnv, timeoutMs = 60_000): Promise<BootFailure> {
    const dataDir = mkdtempSync(join(tmpdir(), 'latch-node-refused-'));
    try {
      const child = track(spawn(process.execPath, [BIN, 'serve'], { env: nodeEnv(env, dataDir), stdio: ['ignore', 'pipe', 'pipe'] }));
      tail(child.stdout);
      const stderr = tail(child.stderr);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const { code, signal } = await exited(child);
      clearTimeout(timer);
      return { code, signal, stderr: stderr.text() };
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get stderr(): string {
    return this.stderrTail.text();
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return exited(this.child);
  }

  /** SIGTERM, SIGKILL after 5 s. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const result = await terminate(this.child);
    rmSync(this.dataDir, { recursive: true, force: true });
    return result;
  }
}

/** Starts nodes at once (they race on migrations and the first signing key, as a real rollout does). */
export async function startNodes(names: string[], env: NodeEnv): Promise<LatchNode[]> {
  const started = await Promise.allSettled(names.map((name) => LatchNode.start(name, env)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  return started.map((r) => (r as PromiseFulfilledResult<LatchNode>).value);
}

/** Cleanup steps run in reverse order, each even when an earlier one failed. */
export class Cleanup {
  private readonly steps: (() => Promise<unknown> | unknown)[] = [];

  add(step: () => Promise<unknown> | unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }
}

// ---- HTTP ----------------------------------------------------------------------------------

export interface Reply {
  status: number;
  type: string;
  body: Record<string, unknown> | null;
  text: string;
  /** ms from sending to the whole body */
  ms: number;
}

const REQUEST_TIMEOUT_MS = 15_000;

export async function call(node: { url: string }, method: string, path: string, options: { token?: string; body?: unknown; timeoutMs?: number } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const started = performance.now();
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    signal: AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let body: Record<string, unknown> | null = null;
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
  } catch {
    body = null;
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body, text, ms: performance.now() - started };
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  session_id: string;
}

export const PASSWORD = 'correct horse battery staple';

export async function register(node: { url: string }, username: string, password = PASSWORD): Promise<string> {
  const r = await call(node, 'POST', '/v1/users', { body: { username, password } });
  if (r.status !== 201) throw new Error(`register ${username} on ${node.url}: ${r.status} ${r.text}`);
  return String(r.body?.id);
}

export async function login(node: { url: string }, username: string, extra: Record<string, unknown> = {}, password = PASSWORD): Promise<Tokens> {
  const r = await call(node, 'POST', '/v1/login', { body: { username, password, ...extra } });
  if (r.status !== 200) throw new Error(`login ${username} on ${node.url}: ${r.status} ${r.text}`);
  return r.body as unknown as Tokens;
}

export const me = (node: { url: string }, token: string, timeoutMs?: number): Promise<Reply> =>
  call(node, 'GET', '/v1/me', { token, ...(timeoutMs ? { timeoutMs } : {}) });

export const logout = (node: { url: string }, token: string, scope?: 'session' | 'others' | 'all'): Promise<Reply> =>
  call(node, 'POST', '/v1/logout', { token, body: scope ? { scope } : {} });

export const refresh = (node: { url: string }, refreshToken: string): Promise<Reply> => call(node, 'POST', '/v1/refresh', { body: { refresh_token: refreshToken } });

/**
 * Probes GET /v1/me with the token on the node, one request after another, until it answers
 * 401; resolves with the ms from `since` (a performance.now()) to that 401, or null after
 * `withinMs`. Any answer but 200 or 401 is an error.
 */
export async function untilRefused(node: { url: string }, token: string, since: number, withinMs = 2_000): Promise<number | null> {
  for (;;) {
    const r = await me(node, token, withinMs + 1_000);
    const at = performance.now();
    if (r.status === 401) return at - since;
    if (r.status !== 200) throw new Error(`GET /v1/me on ${node.url}: ${r.status} ${r.text}`);
    if (at - since > withinMs) return null;
  }
}
