// The incident-response commands, run as separate processes against a running server's data
// directory: they take effect there within the poll interval.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { bearer, harness, login, post, registerAndLogin, sleep, type Harness } from './helpers.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'latch.js');
const PASSWORD = 'correct horse battery';

function cli(dataDir: string, args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, LATCH_DATA_DIR: dataDir }, input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function refusedWithin(h: Harness, token: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if ((await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode === 401) return true;
    await sleep(10);
  }
  return false;
}

describe('incident response from the CLI', () => {
  it('users lock / unlock / set-password / delete reach the running server', async () => {
    const h = await harness({ pollInterval: 100 });
    try {
      const a = await registerAndLogin(h.app, 'ivy');
      const locked = cli(h.dir, ['users', 'lock', 'ivy', '--for', '2h', '--reason', 'phone stolen']);
      assert.equal(locked.status, 0, locked.stderr);
      assert.match(locked.stdout, /locked ivy until \d{4}-\d\d-\d\dT/);
      assert.ok(await refusedWithin(h, a.access_token, 1000), 'the lock ended the session on the server');
      assert.equal((await post(h.app, '/v1/login', { username: 'ivy', password: PASSWORD })).statusCode, 401);
      assert.match(cli(h.dir, ['users', 'list']).stdout, /ivy\t.*\tlocked until /);

      assert.equal(cli(h.dir, ['users', 'unlock', 'ivy']).status, 0);
      const b = await login(h.app, 'ivy');
      const reset = cli(h.dir, ['users', 'set-password', 'ivy'], 'the operator password\n');
      assert.equal(reset.status, 0, reset.stderr);
      assert.match(reset.stdout, /1 session\(s\) ended/);
      assert.ok(await refusedWithin(h, b.access_token, 1000));
      assert.equal((await post(h.app, '/v1/login', { username: 'ivy', password: 'the operator password' })).statusCode, 200);

      const c = await login(h.app, 'ivy', 'the operator password');
      assert.equal(cli(h.dir, ['users', 'delete', 'ivy']).status, 0);
      assert.ok(await refusedWithin(h, c.access_token, 1000));
      assert.equal(cli(h.dir, ['users', 'delete', 'ivy']).status, 1, 'a second delete: no such user');
      const bad = cli(h.dir, ['users', 'lock', 'nobody', '--until', 'not-a-date']);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /--until must be an ISO 8601 date-time/);
    } finally {
      await h.close();
    }
  });

  it('keys rotate --emergency: the running server refuses old tokens and refresh recovers', async () => {
    const h = await harness({ pollInterval: 100 });
    try {
      const t = await registerAndLogin(h.app, 'jay');
      const listed = cli(h.dir, ['keys', 'list']);
      assert.equal(listed.status, 0);
      assert.match(listed.stdout, /\tES256\tactive\t/);
      const rotated = cli(h.dir, ['keys', 'rotate', '--emergency']);
      assert.equal(rotated.status, 0, rotated.stderr);
      assert.match(rotated.stdout, /disabled at once: /);
      assert.ok(await refusedWithin(h, t.access_token, 1000), 'old key refused within the poll interval');
      await sleep(50); // the key ring reload triggered by the key row
      const refreshed = await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
      assert.equal(refreshed.statusCode, 200);
      const access = String((JSON.parse(refreshed.body) as { access_token: string }).access_token);
      assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(access) })).statusCode, 200);
      assert.match(cli(h.dir, ['keys', 'list']).stdout, /\tdisabled\t/);
      const scheduled = cli(h.dir, ['keys', 'rotate']);
      assert.equal(scheduled.status, 0);
      assert.match(scheduled.stdout, /new key .* signs from /);
      assert.equal(cli(h.dir, ['keys', 'rotate', '--revoke-sessions']).status, 2, '--revoke-sessions needs --emergency');
    } finally {
      await h.close();
    }
  });
});
