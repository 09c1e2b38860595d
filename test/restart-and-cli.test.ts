// A restart forgets nothing; the CLI, run as a separate process against the data directory
// of a running server, reaches it within the poll interval; a replaced store is resynchronised.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { bearer, harness, json, login, post, registerAndLogin, sleep, tempDir } from './helpers.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'latch.js');

function cli(dataDir: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, LATCH_DATA_DIR: dataDir, LATCH_LOG_LEVEL: 'silent' },
    input: input ?? '',
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('restart', () => {
  it('keys, sessions and revocations survive; a revoked token stays revoked', async () => {
    const tmp = tempDir();
    try {
      const first = await harness({}, { dir: tmp.dir });
      const live = await registerAndLogin(first.app, 'uma');
      const dead = await login(first.app, 'uma');
      await first.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(dead.access_token) });
      const jwks = json(await first.app.inject({ url: '/.well-known/jwks.json' }));
      await first.app.close();
      await first.opened.close();

      const second = await harness({}, { dir: tmp.dir });
      try {
        assert.deepEqual(json(await second.app.inject({ url: '/.well-known/jwks.json' })), jwks, 'same signing key');
        assert.equal((await second.app.inject({ url: '/v1/me', headers: bearer(live.access_token) })).statusCode, 200);
        assert.equal((await second.app.inject({ url: '/v1/me', headers: bearer(dead.access_token) })).statusCode, 401);
        assert.equal((await post(second.app, '/v1/refresh', { refresh_token: live.refresh_token })).statusCode, 200);
        assert.equal((await post(second.app, '/v1/refresh', { refresh_token: dead.refresh_token })).statusCode, 401);
      } finally {
        await second.close();
      }
    } finally {
      tmp.remove();
    }
  });

  it('a different master key cannot open the stored keys: boot refuses with a message saying so', async () => {
    const tmp = tempDir();
    try {
      const first = await harness({}, { dir: tmp.dir });
      await first.app.close();
      await first.opened.close();
      const other = Buffer.alloc(32, 7).toString('base64url');
      await assert.rejects(harness({ masterKey: other }, { dir: tmp.dir }), /master key cannot open the stored signing key/);
    } finally {
      tmp.remove();
    }
  });
});

describe('the CLI against a running server', () => {
  it('users add (password from stdin) and users list', async () => {
    const tmp = tempDir();
    try {
      const added = cli(tmp.dir, ['users', 'add', 'victor', '--admin'], 'a password from stdin\n');
      assert.equal(added.status, 0, added.stderr);
      assert.match(added.stdout, /created victor .*as admin/);
      const h = await harness({}, { dir: tmp.dir });
      try {
        // exactly one trailing newline was removed, nothing else
        assert.equal((await post(h.app, '/v1/login', { username: 'victor', password: 'a password from stdin' })).statusCode, 200);
      } finally {
        await h.app.close();
        await h.opened.close();
      }
      const listed = cli(tmp.dir, ['users', 'list']);
      assert.equal(listed.status, 0);
      assert.match(listed.stdout, /^victor\t[A-Za-z0-9_-]{22}\tadmin\t/);
      const dup = cli(tmp.dir, ['users', 'add', 'VICTOR'], 'another password\n');
      assert.equal(dup.status, 1);
      assert.match(dup.stderr, /username_taken/);
      const short = cli(tmp.dir, ['users', 'add', 'wendy'], 'short\n');
      assert.equal(short.status, 1);
      assert.match(short.stderr, /password must be 8 to 1024 characters/);
    } finally {
      tmp.remove();
    }
  });

  it('sessions revoke from another process is refused by the running server within the poll interval', async () => {
    const h = await harness({ pollInterval: 100 });
    try {
      const t = await registerAndLogin(h.app, 'xena');
      const listed = cli(h.dir, ['sessions', 'list', 'xena']);
      assert.equal(listed.status, 0, listed.stderr);
      assert.ok(listed.stdout.startsWith(t.session_id));
      assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode, 200);

      const revoked = cli(h.dir, ['sessions', 'revoke', t.session_id]);
      assert.equal(revoked.status, 0, revoked.stderr);
      const started = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - started < 2_000) {
        status = (await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode;
        if (status === 200) await sleep(10);
      }
      assert.equal(status, 401);
      assert.ok(Date.now() - started < 1_000, `took ${Date.now() - started} ms`);
      const again = cli(h.dir, ['sessions', 'revoke', t.session_id]);
      assert.equal(again.status, 1);
    } finally {
      await h.close();
    }
  });

  it('bad configuration stops with a message naming the key; unknown commands print usage', () => {
    const tmp = tempDir();
    try {
      const bad = spawnSync(process.execPath, [BIN, 'users', 'list'], { env: { PATH: process.env.PATH, LATCH_DATA_DIR: tmp.dir, LATCH_ACCESS_TTL: 'soon' }, encoding: 'utf8' });
      assert.equal(bad.status, 78);
      assert.match(bad.stderr, /LATCH_ACCESS_TTL/);
      const unknown = cli(tmp.dir, ['frobnicate']);
      assert.equal(unknown.status, 2);
      assert.match(unknown.stderr, /Usage: latch/);
    } finally {
      tmp.remove();
    }
  });
});

describe('a store replaced under a running server', () => {
  it('a new log_id makes the node resynchronise from a snapshot', async () => {
    const h = await harness({ pollInterval: 20 });
    try {
      const a = await registerAndLogin(h.app, 'yuri');
      const b = await login(h.app, 'yuri');
      await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(a.access_token) });
      const before = h.opened.latch.revocations.position;
      // simulate a restore from backup: a new epoch, a log that knows only b's revocation
      const db = new Database(join(h.dir, 'latch.db'));
      db.prepare('DELETE FROM revocations').run();
      db.prepare("UPDATE revocation_head SET log_id = 'restored-epoch', last_seq = 1").run();
      db.prepare("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (1, 'session', ?, ?, ?)").run(b.session_id, Date.now() + 600_000, Date.now());
      db.close();
      await sleep(100);
      const now = h.opened.latch.revocations.position;
      assert.equal(now.logId, 'restored-epoch');
      assert.notEqual(now.logId, before.logId);
      assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(b.access_token) })).statusCode, 401, 'the restored log is applied');
      assert.equal(h.opened.latch.revocations.state.isSessionRevoked(a.session_id), false, 'the old epoch is forgotten');
    } finally {
      await h.close();
    }
  });
});
