// Account protection across two nodes sharing PostgreSQL and Redis: a lock, throttling and an
// emergency rotation made on one node hold on the other.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { bearer, harness, json, login, post, registerAndLogin, sleep, type Harness, type Tokens } from './helpers.ts';

const PG = process.env.LATCH_TEST_POSTGRES_URL;
const REDIS = process.env.LATCH_TEST_REDIS_URL;
const PASSWORD = 'correct horse battery';
if ((!PG || !REDIS) && process.env.CI === 'true') throw new Error('LATCH_TEST_POSTGRES_URL and LATCH_TEST_REDIS_URL must be set in CI');

async function until(check: () => Promise<boolean>, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(10);
  }
  return false;
}

describe('two nodes on PostgreSQL + Redis', { skip: PG && REDIS ? false : 'LATCH_TEST_POSTGRES_URL / LATCH_TEST_REDIS_URL not set' }, () => {
  const db = `latch_p_${randomBytes(5).toString('hex')}`;
  let a: Harness;
  let b: Harness;
  let admin: Tokens;
  before(async () => {
    const admin0 = new pg.Client({ connectionString: PG });
    await admin0.connect();
    await admin0.query(`CREATE DATABASE ${db}`);
    await admin0.end();
    const url = new URL(PG!);
    url.pathname = `/${db}`;
    const shared = {
      databaseUrl: url.toString(),
      redisUrl: REDIS,
      redisPrefix: `latch-${db}:`,
      issuer: 'http://latch.test',
      masterKey: randomBytes(32).toString('base64url'),
      throttleUserFailures: 4,
    };
    a = await harness(shared);
    b = await harness(shared);
    await a.opened.latch.register({ username: 'root', password: PASSWORD }, null, { admin: true, bypassSignup: true });
    admin = await login(a.app, 'root');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    const admin0 = new pg.Client({ connectionString: PG });
    await admin0.connect();
    await admin0.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin0.end();
  });

  const status = async (h: Harness, token: string): Promise<number> => (await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode;

  it('both nodes share one key ring: a token from A works on B', async () => {
    const t = await registerAndLogin(a.app, 'kim');
    assert.equal(await status(b, t.access_token), 200);
  });

  it("a lock made on A refuses the user's live tokens on both nodes, and login on B", async () => {
    const t = await login(a.app, 'kim');
    const onB = await login(b.app, 'kim');
    assert.equal((await post(a.app, '/v1/admin/users/kim/lock', { seconds: 600 }, bearer(admin.access_token))).statusCode, 200);
    assert.equal(await status(a, t.access_token), 401);
    assert.ok(await until(async () => (await status(b, t.access_token)) === 401 && (await status(b, onB.access_token)) === 401), 'B refuses within 2 s');
    assert.equal((await post(b.app, '/v1/login', { username: 'kim', password: PASSWORD })).statusCode, 401);
    assert.equal((await post(b.app, '/v1/refresh', { refresh_token: onB.refresh_token })).statusCode, 401);
    assert.equal((await h2unlock()).statusCode, 204);
  });

  const h2unlock = () => b.app.inject({ method: 'POST', url: '/v1/admin/users/kim/unlock', headers: bearer(admin.access_token) });

  it('failed logins are counted across nodes', async () => {
    await post(a.app, '/v1/users', { username: 'lee', password: PASSWORD });
    assert.equal((await post(a.app, '/v1/login', { username: 'lee', password: 'wrong password' })).statusCode, 401);
    assert.equal((await post(b.app, '/v1/login', { username: 'lee', password: 'wrong password' })).statusCode, 401);
    assert.equal((await post(a.app, '/v1/login', { username: 'lee', password: 'wrong password' })).statusCode, 401);
    assert.equal((await post(b.app, '/v1/login', { username: 'lee', password: 'wrong password' })).statusCode, 401);
    const onA = await post(a.app, '/v1/login', { username: 'lee', password: PASSWORD });
    const onB = await post(b.app, '/v1/login', { username: 'lee', password: PASSWORD });
    assert.deepEqual([onA.statusCode, onB.statusCode], [429, 429]);
    assert.equal(json(onB).code, 'too_many_attempts');
  });

  it('an emergency rotation on A is refused on both nodes and recovered by refresh on B', async () => {
    const t = await login(b.app, 'kim');
    const res = await post(a.app, '/v1/admin/keys/rotate', { emergency: true }, bearer(admin.access_token));
    assert.equal(res.statusCode, 200, res.body);
    const { kid } = json(res) as { kid: string };
    assert.equal(await status(a, t.access_token), 401);
    assert.ok(await until(async () => (await status(b, t.access_token)) === 401), 'B refuses the old key within 2 s');
    assert.ok(await until(async () => b.opened.latch.keyRing.signingKey().kid === kid), 'B signs with the new key');
    const refreshed = await post(b.app, '/v1/refresh', { refresh_token: t.refresh_token });
    assert.equal(refreshed.statusCode, 200);
    const access = String(json(refreshed).access_token);
    assert.equal(await status(a, access), 200);
    assert.equal(await status(b, access), 200);
  });
});
