// `latch <command>`: serve, and the operator commands that act on the same store as a running
// server (their revocations reach it within LATCH_POLL_INTERVAL).
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../config.ts';
import { ConfigError, LatchError } from '../core/errors.ts';
import { openLatch } from '../compose.ts';
import { serve } from './serve.ts';
import { readPassword } from './prompt.ts';

const USAGE = `Usage: latch [--config FILE] <command>

Commands:
  serve                              run the server (default)
  users add <username> [--admin]     create a user (password from stdin, or a prompt on a TTY)
  users list                         list users
  sessions list <username>           list a user's live sessions
  sessions revoke <session-id>       end a session (a running server refuses its tokens within the poll interval)

Configuration: LATCH_* environment variables or --config FILE (see docs/configuration.md).`;

class UsageError extends Error {}

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

async function users(config: Config, args: string[], flags: { admin: boolean }): Promise<number> {
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
    for (const u of list) out(`${u.username}\t${u.id}\t${u.isAdmin ? 'admin' : 'user'}\t${new Date(u.createdAt).toISOString()}`);
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
      options: { config: { type: 'string' }, admin: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
    });
  } catch (err) {
    process.stderr.write(`latch: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) return out(USAGE), 0;
  if (values.version) return out(version()), 0;
  const [command = 'serve', ...rest] = positionals;
  try {
    const config = loadConfig({ file: values.config ?? process.env.LATCH_CONFIG, warn: (m) => process.stderr.write(`latch: warning: ${m}\n`) });
    switch (command) {
      case 'serve':
        return await serve(config, version());
      case 'users':
        return await users(config, rest, { admin: values.admin ?? false });
      case 'sessions':
        return await sessions(config, rest);
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
