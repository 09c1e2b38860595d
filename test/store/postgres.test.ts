// The store conformance suite against PostgresStore (each store in its own fresh schema,
// dropped afterwards), plus what only a shared server can show: racing migrations, two nodes
// (two pools) on one database, and lost connections reported as StoreUnavailableError.
// Runs when LATCH_TEST_POSTGRES_URL is set; in CI (CI=true) its absence is a failure, not a skip.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { StoreUnavailableError } from '../../src/core/errors.ts';
import { isConnectionFailure } from '../../src/store/postgres/errors.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { MIGRATIONS } from '../../src/store/postgres/migrations.ts';
import type { NewSession, RotateResult, Store } from '../../src/store/port.ts';
import { storeConformance } from './conformance.ts';

const url = process.env.LATCH_TEST_POSTGRES_URL;

describe('postgres: which errors mean "unavailable"', () => {
  const withCode = (code: string, message = 'x'): Error => Object.assign(new Error(message), { code });
  it('network errors, server shutdown and class 08 are connection failures', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', '57P01', '57P02', '57P03', '08006', '08001', '08P01']) {
      assert.equal(isConnectionFailure(withCode(code)), true, code);
    }
    assert.equal(isConnectionFailure(new Error('Connection terminated unexpectedly')), true);
    assert.equal(isConnectionFailure(new Error('timeout exceeded when trying to connect')), true);
    assert.equal(isConnectionFailure(new AggregateError([withCode('ECONNREFUSED')], '')), true);
  });
  it('query errors are not', () => {
    for (const code of ['23505', '42P01', '40P01', '22021', '57014']) assert.equal(isConnectionFailure(withCode(code)), false, code);
    assert.equal(isConnectionFailure(new Error('boom')), false);
    assert.equal(isConnectionFailure('ECONNREFUSED'), false);
  });
});

if (!url) {
  const reason = 'LATCH_TEST_POSTGRES_URL is not set, so the PostgreSQL store suite did not run (set it to a postgres:// URL to run it)';
  if (process.env.CI === 'true') {
    it('PostgreSQL store suite', () => assert.fail(`${reason}. CI must run it: set LATCH_TEST_POSTGRES_URL.`));
  } else {
    it('PostgreSQL store suite', { skip: reason }, () => {});
  }
} else {
  const connectionString = url;
  const admin = new pg.Pool({ connectionString, max: 2 });
  admin.on('error', () => {});
  after(() => admin.end());

  const freshSchema = (): string => `latch_t_${randomBytes(6).toString('hex')}`;
  const dropSchema = async (schema: string): Promise<void> => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  };

  storeConformance('postgres', async () => {
    const schema = freshSchema();
    const store = new PostgresStore({ connectionString, schema, poolSize: 12 });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropSchema(schema);
      },
    };
  });

  /** Several stores (one pool each: several nodes) on one fresh schema, all closed and dropped afterwards. */
  async function withNodes(n: number, body: (stores: PostgresStore[], schema: string) => Promise<void>): Promise<void> {
    const schema = freshSchema();
    const stores = Array.from({ length: n }, () => new PostgresStore({ connectionString, schema, poolSize: 6 }));
    try {
      await body(stores, schema);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await dropSchema(schema);
    }
  }

  const T0 = 1_700_000_000_000;
  const hash = (label: string): Buffer => createHash('sha256').update(label).digest();
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const isUnavailable = (err: unknown): boolean => err instanceof StoreUnavailableError;
  const session = (id: string, userId: string): NewSession => ({
    id,
    userId,
    device: null,
    ip: null,
    userAgent: null,
    createdAt: T0,
    lastSeenAt: T0,
    expiresAt: T0 + 86_400_000,
    accessExpiresAt: T0 + 305_000,
  });
  async function seed(store: Store): Promise<void> {
    await store.createUser({ id: 'u1', username: 'pat', usernameKey: 'pat', passwordHash: 'h', isAdmin: false, createdAt: T0 });
    assert.deepEqual(await store.createSession(session('s1', 'u1'), hash('s1:0')), { kind: 'created' });
  }
  const audit = { type: 'refresh.reused', at: T0, actor: null, subject: null, ip: null, userAgent: null, detail: null } as const;

  describe('postgres only', () => {
    it('migrate() calls racing on a brand-new schema all succeed, once', { timeout: 30_000 }, async () => {
      await withNodes(4, async (stores, schema) => {
        await Promise.all(stores.map((s) => s.migrate()));
        const versions = (await admin.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`)).rows.map((r) => r.version);
        assert.deepEqual(versions, MIGRATIONS.map((m) => m.version));
        const heads = await Promise.all(stores.map((s) => s.revocationHead()));
        assert.equal(new Set(heads.map((h) => h.logId)).size, 1, 'every node sees the one log');
        assert.deepEqual(heads.map((h) => h.lastSeq), [0, 0, 0, 0]);
      });
    });

    it('two nodes racing on one refresh token: exactly one rotation', { timeout: 30_000 }, async () => {
      await withNodes(2, async ([a, b]) => {
        await a!.migrate();
        await seed(a!);
        const input = { presentedHash: hash('s1:0'), successorHash: hash('s1:1'), now: T0 + 1_000, graceMs: 0, idleMs: 86_400_000, accessExpiresAt: T0 + 306_000, ip: null, userAgent: null };
        const results: RotateResult[] = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a! : b!).rotateRefreshToken(input, audit)));
        const kinds = results.map((r) => r.kind).sort();
        assert.deepEqual(kinds, ['invalid', 'invalid', 'invalid', 'invalid', 'invalid', 'invalid', 'invalid', 'invalid', 'reused', 'rotated']);
        assert.equal((await b!.getSession('s1'))?.revokedAt, T0 + 1_000);
        assert.equal((await a!.revocationHead()).lastSeq, 1);
      });
    });

    it('two nodes booting on an empty database: one first signing key', { timeout: 30_000 }, async () => {
      await withNodes(3, async (stores) => {
        await Promise.all(stores.map((s) => s.migrate()));
        const key = (kid: string) => ({ kid, alg: 'ES256', state: 'active' as const, publicJwk: '{}', sealedPrivateKey: Buffer.from(kid), createdAt: T0, activatedAt: null, retiredAt: null });
        const won = await Promise.all(stores.flatMap((s, i) => [s.insertFirstSigningKey(key(`k${i}a`)), s.insertFirstSigningKey(key(`k${i}b`))]));
        assert.equal(won.filter(Boolean).length, 1, JSON.stringify(won));
        assert.equal((await stores[0]!.listSigningKeys()).length, 1);
      });
    });

    it('a login racing a logout everywhere commits after it, never between its read and its commit', { timeout: 30_000 }, async () => {
      await withNodes(2, async ([a, b], schema) => {
        await a!.migrate();
        await seed(a!);
        const app = `latch/${schema}`;
        const waiters = async (): Promise<number> =>
          Number((await admin.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [app])).rows[0]?.n);
        const until = async (n: number, settled: () => boolean = () => false): Promise<void> => {
          for (let i = 0; i < 200 && !settled() && (await waiters()) < n; i += 1) await sleep(10);
        };
        // Park the logout between its read of the sessions and its commit by holding the head row.
        const holder = new pg.Client({ connectionString });
        holder.on('error', () => {});
        await holder.connect();
        try {
          await holder.query('BEGIN');
          await holder.query(`SELECT 1 FROM ${schema}.revocation_head WHERE id = 1 FOR UPDATE`);
          const logout = a!.revokeUserSessions({ userId: 'u1', now: T0 + 10 });
          logout.catch(() => {});
          await until(1);
          assert.equal(await waiters(), 1, 'the logout is not parked on the head row');
          let loginSettled = false;
          const login = b!.createSession({ ...session('s2', 'u1'), createdAt: T0 + 10, lastSeenAt: T0 + 10 }, hash('s2:0')).finally(() => {
            loginSettled = true;
          });
          login.catch(() => {});
          await until(2, () => loginSettled);
          assert.equal(loginSettled, false, 'the login committed while the logout was between its read and its commit');
          assert.equal(await waiters(), 2);
          await holder.query('COMMIT');
          assert.deepEqual((await logout).map((r) => r.target), ['s1']);
          assert.deepEqual(await login, { kind: 'created' });
        } finally {
          await holder.end();
        }
        assert.equal((await a!.getSession('s2'))?.revokedAt, null, 'the later login lives');
      });
    });

    it('refuses a schema name that is not a plain identifier', () => {
      for (const schema of ['Latch', 'a;drop schema public', '1abc', '', 'a-b', 'a"b']) {
        assert.throws(() => new PostgresStore({ connectionString, schema }), TypeError, schema);
      }
    });

    it('an SQL error propagates as itself, not as unavailable', { timeout: 30_000 }, async () => {
      await withNodes(1, async ([store]) => {
        // not migrated: the tables do not exist
        await assert.rejects(store!.revocationHead(), (err: unknown) => !isUnavailable(err) && (err as { code?: string }).code === '42P01');
        await assert.rejects(store!.revokeSession({ sessionId: 's1', now: T0 }), (err: unknown) => !isUnavailable(err) && (err as { code?: string }).code === '42P01');
      });
    });

    it('an unreachable server is StoreUnavailableError, for reads and transactions alike', { timeout: 30_000 }, async () => {
      const dead = new URL(connectionString);
      dead.host = '127.0.0.1:1';
      const store = new PostgresStore({ connectionString: dead.toString() });
      try {
        await assert.rejects(store.migrate(), isUnavailable);
        await assert.rejects(store.revocationHead(), isUnavailable);
        await assert.rejects(store.readRevocations(0, 10, T0), isUnavailable);
        await assert.rejects(store.createUser({ id: 'u', username: 'u', usernameKey: 'u', passwordHash: 'h', isAdmin: false, createdAt: T0 }), isUnavailable);
      } finally {
        await store.close();
      }
    });

    it('after its connections are killed, the pool reconnects by itself', { timeout: 30_000 }, async () => {
      await withNodes(1, async ([store], schema) => {
        await store!.migrate();
        await Promise.all(Array.from({ length: 5 }, () => store!.revocationHead()));
        const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`latch/${schema}`]);
        assert.ok((killed.rowCount ?? 0) > 0, 'the store held no connection to kill');
        await sleep(50);
        let recovered = false;
        for (let attempt = 0; attempt < 20 && !recovered; attempt += 1) {
          try {
            await store!.revocationHead();
            recovered = true;
          } catch (err) {
            assert.ok(isUnavailable(err), `a lost connection must read as unavailable, got ${String(err)}`);
            await sleep(50);
          }
        }
        assert.ok(recovered, 'the store did not recover');
        await seed(store!);
        assert.equal((await store!.listUsers()).length, 1);
      });
    });

    it('a connection killed inside a transaction fails that call as unavailable and leaves nothing behind', { timeout: 30_000 }, async () => {
      await withNodes(1, async ([store], schema) => {
        await store!.migrate();
        await seed(store!);
        const holder = new pg.Client({ connectionString });
        holder.on('error', () => {});
        await holder.connect();
        try {
          await holder.query('BEGIN');
          await holder.query(`SELECT 1 FROM ${schema}.sessions WHERE id = 's1' FOR UPDATE`);
          const pending = store!.revokeSession({ sessionId: 's1', now: T0 + 1 });
          pending.catch(() => {});
          let waiting = false;
          for (let i = 0; i < 100 && !waiting; i += 1) {
            const r = await admin.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [`latch/${schema}`]);
            waiting = (r.rowCount ?? 0) > 0;
            if (!waiting) await sleep(20);
          }
          assert.ok(waiting, 'the revocation never waited for the session lock');
          await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`latch/${schema}`]);
          await assert.rejects(pending, isUnavailable);
          await holder.query('ROLLBACK');
        } finally {
          await holder.end();
        }
        assert.equal((await store!.getSession('s1'))?.revokedAt, null);
        assert.deepEqual(await store!.revokeSession({ sessionId: 's1', now: T0 + 2 }), [{ seq: 1, kind: 'session', target: 's1', expiresAt: T0 + 305_000, createdAt: T0 + 2 }]);
      });
    });
  });
}
