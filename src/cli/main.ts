// `latch <command>`: serve, and the operator commands that act on the same store as a running
// server (their revocations reach it within LATCH_POLL_INTERVAL).
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseDuration, type Config } from '../config.ts';
import { ConfigError, LatchError } from '../core/errors.ts';
import { openLatch } from '../compose.ts';
import { serve } from './serve.ts';
import { readPassword } from './prompt.ts';
import { clients } from './clients.ts';

const USAGE = `Usage: latch [--config FILE] <command>

Commands:
  serve                              run the server (default)
  users add <username> [--admin]     create a user (password from stdin, or a prompt on a TTY)
  users list                         list users
  users lock <username> [--for 24h | --until ISO] [--reason TEXT]
                                     end every session now and refuse login and refresh until then
  users unlock <username>            lift a lock early
  users set-password <username>      set a new password (from stdin or a prompt); every session ends
  users delete <username>            delete a user; everything of the user is revoked at once
  sessions list <username>           list a user's live sessions
  sessions revoke <session-id>       end a session (a running server refuses its tokens within the poll interval)
  keys list                          the signing keys and their states
  keys rotate [--emergency [--revoke-sessions]]
                                     scheduled: publish a next key that signs after the lead time;
                                     emergency: a new key signs now and the old ones are disabled at once
  clients add <name> [--json]        a resource-server credential (revocation feed, introspection):
                                     prints its id and secret once; only the secret's hash is kept
  clients list                       list resource-server clients
  clients remove <name>              remove a client; its credential stops working at once
  bench [suite]                      run the benchmarks (core, cluster, protection, verify, all;
                                     from a source checkout; see bench/README.md)

Configuration: LATCH_* environment variables or --config FILE (see docs/configuration.md).`;

class UsageError extends Error {}

/** `latch bench`: bench/run.ts in a child with --expose-gc (the memory figures need it). */
async function bench(args: string[]): Promise<number> {
  const runner = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
  if (!existsSync(runner)) {
    process.stderr.write('latch: the benchmarks ship with the source checkout only (bench/run.ts is missing)\n');
    return 1;
  }
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', runner, ...args], { stdio: 'inherit' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
  return pkg.version;
}

const out = (line: string): void => void process.stdout.write(`${line}\n`);

async function withLatch<T>(config: Config, fn: (latch: Awaited<ReturnType<typeof openLatch>>['latch']) => Promise<T>): Promise<T> {
  const opened = await openLatch(config, { serve: false });
  try {
    return await fn(opened.latch);
  } finally {
    await opened.close();
  }
}

interface Flags {
  admin: boolean;
  for?: string | undefined;
  until?: string | undefined;
  reason?: string | undefined;
  emergency: boolean;
  revokeSessions: boolean;
}

async function keys(config: Config, args: string[], flags: Flags): Promise<number> {
  const [sub] = args;
  if (sub === 'list') {
    const list = await withLatch(config, async (latch) => latch.keyRing.list());
    const at = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());
    for (const k of list) out(`${k.kid}\t${k.alg}\t${k.state}\tcreated ${at(k.createdAt)}\tactive from ${at(k.activatedAt)}\tretired ${at(k.retiredAt)}`);
    return 0;
  }
  if (sub === 'rotate') {
    if (flags.revokeSessions && !flags.emergency) throw new UsageError('--revoke-sessions needs --emergency');
    const started = Date.now();
    const result = await withLatch(config, (latch) => latch.admin.rotateKeys({ emergency: flags.emergency, revokeSessions: flags.revokeSessions }, 'cli'));
    out(`new key ${result.kid} signs from ${new Date(result.activeFrom).toISOString()}`);
    if (result.disabled.length > 0) out(`disabled at once: ${result.disabled.join(', ')}`);
    const sessions = result.revocations.filter((r) => r.kind === 'session').length;
    if (sessions > 0) out(`${sessions} session(s) ended`);
    out(`took ${Date.now() - started} ms`);
    return 0;
  }
  throw new UsageError(`unknown keys command ${JSON.stringify(sub ?? '')}`);
}

async function users(config: Config, args: string[], flags: Flags): Promise<number> {
  const [sub, name] = args;
  if (sub === 'add') {
    if (!name) throw new UsageError('users add needs a username');
    const password = await readPassword(`Password for ${name}: `);
    const user = await withLatch(config, (latch) => latch.register({ username: name, password }, null, { admin: flags.admin, bypassSignup: true }));
    out(`created ${user.username} (id ${user.id})${flags.admin ? ' as admin' : ''}`);
    return 0;
  }
  if (sub === 'list') {
    const list = await withLatch(config, (latch) => latch.store.listUsers());
    const now = Date.now();
    for (const u of list) {
      const lock = u.lockedUntil !== null && u.lockedUntil > now ? `\tlocked until ${new Date(u.lockedUntil).toISOString()}` : '';
      out(`${u.username}\t${u.id}\t${u.isAdmin ? 'admin' : 'user'}\t${new Date(u.createdAt).toISOString()}${lock}`);
    }
    return 0;
  }
  if (!name) throw new UsageError(`users ${sub ?? ''} needs a username`);
  if (sub === 'lock') {
    if (flags.for !== undefined && flags.until !== undefined) throw new UsageError('give --for or --until, not both');
    const until = flags.until !== undefined ? Date.parse(flags.until) : undefined;
    if (until !== undefined && Number.isNaN(until)) throw new UsageError('--until must be an ISO 8601 date-time, e.g. 2026-12-31T23:00:00Z');
    let seconds: number | undefined;
    try {
      seconds = flags.for !== undefined ? parseDuration(flags.for, '--for') : undefined;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const locked = await withLatch(config, (latch) =>
      latch.admin.lockUser(name, { ...(seconds !== undefined ? { seconds } : {}), ...(until !== undefined ? { until } : {}), ...(flags.reason ? { reason: flags.reason } : {}) }, 'cli', null),
    );
    out(`locked ${locked.username} until ${new Date(locked.lockedUntil).toISOString()}; every session ended`);
    return 0;
  }
  if (sub === 'unlock') {
    await withLatch(config, (latch) => latch.admin.unlockUser(name, 'cli', null));
    out(`unlocked ${name}`);
    return 0;
  }
  if (sub === 'set-password') {
    const password = await readPassword(`New password for ${name}: `);
    const ended = await withLatch(config, (latch) => latch.admin.resetPassword(name, password, 'cli', null));
    out(`password of ${name} set; ${ended} session(s) ended`);
    return 0;
  }
  if (sub === 'delete') {
    const ended = await withLatch(config, (latch) => latch.admin.deleteUser(name, 'cli', null));
    out(`deleted ${name}; ${ended} session(s) ended`);
    return 0;
  }
  throw new UsageError(`unknown users command ${JSON.stringify(sub ?? '')}`);
}

async function sessions(config: Config, args: string[]): Promise<number> {
  const [sub, target] = args;
  if (sub === 'list') {
    if (!target) throw new UsageError('sessions list needs a username');
    return withLatch(config, async (latch) => {
      const user = await latch.findUser(target);
      if (!user) {
        process.stderr.write(`latch: no user ${target}\n`);
        return 1;
      }
      for (const s of await latch.listUserSessions(user.id)) {
        out(`${s.id}\t${new Date(s.createdAt).toISOString()}\t${new Date(s.lastSeenAt).toISOString()}\t${s.ip ?? '-'}\t${s.device ?? '-'}\t${s.userAgent ?? '-'}`);
      }
      return 0;
    });
  }
  if (sub === 'revoke') {
    if (!target) throw new UsageError('sessions revoke needs a session id');
    return withLatch(config, async (latch) => {
      if (!(await latch.revokeSessionById(target, 'cli'))) {
        process.stderr.write(`latch: no live session ${target}\n`);
        return 1;
      }
      out(`revoked ${target}`);
      return 0;
    });
  }
  throw new UsageError(`unknown sessions command ${JSON.stringify(sub ?? '')}`);
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        admin: { type: 'boolean', default: false },
        for: { type: 'string' },
        until: { type: 'string' },
        reason: { type: 'string' },
        emergency: { type: 'boolean', default: false },
        'revoke-sessions': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    process.stderr.write(`latch: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) return out(USAGE), 0;
  if (values.version) return out(version()), 0;
  const [command = 'serve', ...rest] = positionals;
  const flags: Flags = {
    admin: values.admin ?? false,
    for: values.for,
    until: values.until,
    reason: values.reason,
    emergency: values.emergency ?? false,
    revokeSessions: values['revoke-sessions'] ?? false,
  };
  try {
    if (command === 'bench') return await bench(rest);
    const config = loadConfig({ file: values.config ?? process.env.LATCH_CONFIG, warn: (m) => process.stderr.write(`latch: warning: ${m}\n`) });
    switch (command) {
      case 'serve':
        return await serve(config, version());
      case 'users':
        return await users(config, rest, flags);
      case 'keys':
        return await keys(config, rest, flags);
      case 'sessions':
        return await sessions(config, rest);
      case 'clients':
        return await clients(config, rest, { json: values.json ?? false }, (message) => {
          throw new UsageError(message);
        });
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`latch: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`latch: configuration error: ${err.message}\n`);
      return 78; // EX_CONFIG
    }
    if (err instanceof LatchError) {
      process.stderr.write(`latch: ${err.code}: ${err.detail ?? err.message}\n`);
      return 1;
    }
    process.stderr.write(`latch: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}
