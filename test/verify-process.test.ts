// `latch/verify` in its own process against a real Latch over loopback, through a TCP proxy
// that can cut, refuse or silence its connections: live tokens pass; logout, session revoke
// (HTTP and CLI), lock-out and a disabled key are refused within 100 ms; a cut stream resumes
// by seq; a silent feed fails closed and recovers; a Latch restart and a replaced store are survived.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { bearer, json, login, post, registerAndLogin, tempDir } from './helpers.ts';
import { addClient, eventually, liveLatch, TcpProxy, VerifierProcess, wallMs, type LiveLatch } from './fixtures/loopback.ts';

const PROPAGATION_MS = 100;
const BIN = join(import.meta.dirname, '..', 'bin', 'latch.js');
const PASSWORD = 'correct horse battery';

/** The CLI as another process; asynchronous, so the Latch in this process keeps serving meanwhile. */
function cli(dataDir: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, LATCH_DATA_DIR: dataDir, LATCH_LOG_LEVEL: 'silent' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs `act` while the verifier watches `token`; returns ms from the end of `act` (the 204) to the first refusal. */
async function propagation(verifier: VerifierProcess, token: string, act: () => Promise<void>): Promise<{ ms: number; code: string }> {
  const { refused } = await verifier.watch(token, 5_000);
  await act();
  const done = wallMs();
  const { refusedAt, code } = await refused;
  return { ms: refusedAt - done, code };
}

describe('latch/verify in its own process', () => {
  const tmp = tempDir();
  let proxy: TcpProxy;
  let latch: LiveLatch;
  let verifier: VerifierProcess;
  let client: { id: string; secret: string };

  const start = async (): Promise<LiveLatch> => {
    const started = await liveLatch({ issuer: proxy.url, dir: tmp.dir, overrides: { pollInterval: 50 } });
    proxy.retarget(started.port);
    return started;
  };
  const stop = async (): Promise<void> => {
    await latch.app.close();
    await latch.opened.close();
  };

  before(async () => {
    // the proxy's port is the issuer's: the verifier reaches Latch only through it
    proxy = await TcpProxy.start(1);
    latch = await start();
    client = await addClient(latch.opened.latch, 'orders-api');
    verifier = await VerifierProcess.spawn({ issuer: proxy.url, client, budgetSeconds: 2 });
  });
  after(async () => {
    await verifier?.close();
    await stop().catch(() => {});
    await proxy?.close();
    tmp.remove();
  });

  it('accepts a live token and returns its claims', async () => {
    const t = await registerAndLogin(latch.app, 'alice', PASSWORD);
    const result = await verifier.verify(t.access_token);
    assert.equal(result.ok, true, JSON.stringify(result));
    if (result.ok) {
      assert.equal(result.claims.sid, t.session_id);
      assert.equal(result.claims.iss, proxy.url);
      assert.equal(result.claims.aud, 'latch');
    }
    const bad = await verifier.verify('not.a.token');
    assert.equal(bad.ok ? 'accepted' : bad.code, 'token_malformed');
  });

  it('refuses a logged-out token within 100 ms of the 204', async () => {
    const t = await login(latch.app, 'alice', PASSWORD);
    assert.equal((await verifier.verify(t.access_token)).ok, true);
    const { ms, code } = await propagation(verifier, t.access_token, async () => {
      assert.equal((await latch.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) })).statusCode, 204);
    });
    assert.equal(code, 'token_revoked');
    assert.ok(ms < PROPAGATION_MS, `refused ${ms.toFixed(1)} ms after the 204`);
  });

  it('refuses a session ended with DELETE /v1/sessions/:id within 100 ms', async () => {
    const keep = await login(latch.app, 'alice', PASSWORD);
    const victim = await login(latch.app, 'alice', PASSWORD);
    const { ms, code } = await propagation(verifier, victim.access_token, async () => {
      const res = await latch.app.inject({ method: 'DELETE', url: `/v1/sessions/${victim.session_id}`, headers: bearer(keep.access_token) });
      assert.equal(res.statusCode, 204);
    });
    assert.equal(code, 'token_revoked');
    assert.ok(ms < PROPAGATION_MS, `refused ${ms.toFixed(1)} ms after the 204`);
    assert.equal((await verifier.verify(keep.access_token)).ok, true, 'the other session is untouched');
  });

  it('refuses a session ended by `latch sessions revoke` from another process within 100 ms of its exit', async () => {
    const t = await login(latch.app, 'alice', PASSWORD);
    const { ms, code } = await propagation(verifier, t.access_token, async () => {
      const r = await cli(tmp.dir, ['sessions', 'revoke', t.session_id]);
      assert.equal(r.status, 0, r.stderr);
    });
    assert.equal(code, 'token_revoked');
    // the CLI writes the store; the server reads it within its poll interval (50 ms here), then pushes
    assert.ok(ms < PROPAGATION_MS, `refused ${ms.toFixed(1)} ms after the CLI exited`);
  });

  it('refuses every session of a locked user within 100 ms (the lock-out cutoff)', async () => {
    await latch.opened.latch.register({ username: 'root', password: PASSWORD }, null, { admin: true, bypassSignup: true });
    const admin = await login(latch.app, 'root', PASSWORD);
    const a = await registerAndLogin(latch.app, 'bob', PASSWORD);
    const b = await login(latch.app, 'bob', PASSWORD);
    const { ms, code } = await propagation(verifier, a.access_token, async () => {
      const res = await post(latch.app, '/v1/admin/users/bob/lock', { seconds: 3600 }, bearer(admin.access_token));
      assert.equal(res.statusCode, 200, res.body);
    });
    assert.equal(code, 'token_revoked');
    assert.ok(ms < PROPAGATION_MS, `refused ${ms.toFixed(1)} ms after the 200`);
    const other = await verifier.verify(b.access_token);
    assert.deepEqual(other.ok ? 'accepted' : other.code, 'token_revoked', 'every session of the user');
  });

  it('keeps refusing after its stream is cut, and catches up by seq on reconnect', async () => {
    const before = await login(latch.app, 'alice', PASSWORD);
    await latch.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(before.access_token) });
    const during = await login(latch.app, 'alice', PASSWORD);
    assert.ok(await eventually(async () => !(await verifier.verify(before.access_token)).ok, 1_000));
    const snapshots = (await verifier.status()).snapshots as number;

    proxy.refuse(true);
    proxy.cut();
    // revoked while the verifier cannot hear about it
    await latch.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(during.access_token) });
    const cut = await verifier.verify(before.access_token);
    assert.equal(cut.ok ? 'accepted' : cut.code, 'token_revoked', 'what it knew, it still knows');

    proxy.refuse(false);
    assert.ok(await eventually(async () => !(await verifier.verify(during.access_token)).ok, 3_000), 'the missed revocation arrives on reconnect');
    const status = await verifier.status();
    assert.equal(status.snapshots, snapshots, 'resumed by seq, no new snapshot');
    assert.equal(status.fresh, true);
    assert.equal((await verifier.verify(before.access_token)).ok, false);
  });

  it('fails closed when the feed goes silent past its budget, and recovers', async () => {
    const t = await login(latch.app, 'alice', PASSWORD);
    assert.equal((await verifier.verify(t.access_token)).ok, true);
    proxy.silence(true);
    const silentAt = Date.now();
    let stale = false;
    assert.ok(
      await eventually(async () => {
        const r = await verifier.verify(t.access_token);
        stale = !r.ok && r.code === 'revocation_state_stale';
        return stale;
      }, 6_000),
      'a silent feed makes every token refused',
    );
    assert.ok(Date.now() - silentAt >= 1_000, 'not before the budget (2 s) has nearly run out');
    proxy.silence(false);
    proxy.cut();
    assert.ok(await eventually(async () => (await verifier.verify(t.access_token)).ok, 5_000), 'accepted again once the feed answers');
  });

  it('survives a Latch restart: what was revoked while Latch was down is refused when it is back', async () => {
    const live = await login(latch.app, 'alice', PASSWORD);
    const doomed = await login(latch.app, 'alice', PASSWORD);
    const snapshots = (await verifier.status()).snapshots as number;
    await stop();
    const r = await cli(tmp.dir, ['sessions', 'revoke', doomed.session_id]);
    assert.equal(r.status, 0, r.stderr);
    latch = await start();
    assert.ok(await eventually(async () => !(await verifier.verify(doomed.access_token)).ok, 8_000), 'the revocation made while down arrives');
    assert.ok(await eventually(async () => (await verifier.verify(live.access_token)).ok, 5_000), 'live tokens pass again');
    assert.equal((await verifier.status()).snapshots, snapshots, 'same log: caught up by seq');
    const { ms } = await propagation(verifier, live.access_token, async () => {
      assert.equal((await latch.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(live.access_token) })).statusCode, 204);
    });
    assert.ok(ms < PROPAGATION_MS, `after the restart: refused ${ms.toFixed(1)} ms after the 204`);
  });

  it('resynchronises from a snapshot when the store is replaced under the server (new log_id)', async () => {
    const a = await login(latch.app, 'alice', PASSWORD);
    const b = await login(latch.app, 'alice', PASSWORD);
    await latch.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(a.access_token) });
    assert.ok(await eventually(async () => !(await verifier.verify(a.access_token)).ok, 1_000));
    const snapshots = (await verifier.status()).snapshots as number;
    // a restore from backup: a new epoch whose log knows only b's revocation
    const db = new Database(join(tmp.dir, 'latch.db'));
    db.prepare('DELETE FROM revocations').run();
    db.prepare("UPDATE revocation_head SET log_id = 'restored-epoch', last_seq = 1").run();
    db.prepare("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (1, 'session', ?, ?, ?)").run(b.session_id, Date.now() + 600_000, Date.now());
    db.close();
    assert.ok(
      await eventually(async () => (await verifier.status()).logId === 'restored-epoch', 5_000),
      'the verifier moved to the new epoch',
    );
    const status = await verifier.status();
    assert.equal(status.snapshots, snapshots + 1, 'through a snapshot');
    assert.equal((await verifier.verify(b.access_token)).ok, false, 'the restored log is applied');
    assert.equal((await verifier.verify(a.access_token)).ok, true, 'the old epoch is forgotten, as on the server');
    const c = await login(latch.app, 'alice', PASSWORD);
    const { ms } = await propagation(verifier, c.access_token, async () => {
      assert.equal((await latch.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(c.access_token) })).statusCode, 204);
    });
    assert.ok(ms < PROPAGATION_MS, `in the new epoch: refused ${ms.toFixed(1)} ms after the 204`);
  });

  it('refuses every token of a disabled key within 100 ms, and never accepts that kid again', async () => {
    const admin = await login(latch.app, 'root', PASSWORD);
    const t = await login(latch.app, 'alice', PASSWORD);
    const kid = (JSON.parse(Buffer.from(t.access_token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    assert.equal((await verifier.verify(t.access_token)).ok, true);
    const { ms, code } = await propagation(verifier, t.access_token, async () => {
      const res = await post(latch.app, '/v1/admin/keys/rotate', { emergency: true }, bearer(admin.access_token));
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual((json(res).disabled as string[]).includes(kid), true);
    });
    assert.equal(code, 'key_disabled');
    assert.ok(ms < PROPAGATION_MS, `refused ${ms.toFixed(1)} ms after the 200`);
    const status = await verifier.status();
    assert.ok(!(status.keys as string[]).includes(kid), 'the kid left the key set');
    // the new key is fetched on the key event: a token it signs passes
    const next = await login(latch.app, 'alice', PASSWORD);
    assert.ok(await eventually(async () => (await verifier.verify(next.access_token)).ok, 2_000), 'tokens of the new key pass');
    assert.equal((await verifier.verify(t.access_token)).ok, false);
  });
});
