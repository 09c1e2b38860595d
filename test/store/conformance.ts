// The store contract as tests, run unchanged against every adapter (sqlite.test.ts,
// postgres.test.ts), so the backends cannot drift apart. Every test gets a store on an empty
// database, not yet migrated; times are fixed, so every expected value is exact.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AuditInput, AuditType, NewSession, NewUser, RevocationRow, RotateInput, RotateResult, SessionRecord, SigningKeyRecord, Store } from '../../src/store/port.ts';

export interface OpenedStore {
  store: Store;
  /** closes the store and removes its database */
  cleanup: () => Promise<void>;
}

export type OpenStore = () => Promise<OpenedStore>;

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const DAY = 86_400_000;
const IDLE = 7 * DAY;
const GRACE = 10_000;

const hash = (label: string): Buffer => createHash('sha256').update(label).digest();
const uid = (prefix: string): string => `${prefix}_${randomBytes(8).toString('hex')}`;
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function newUser(usernameKey: string, overrides: Partial<NewUser> = {}): NewUser {
  return { id: uid('u'), username: usernameKey.toUpperCase(), usernameKey, passwordHash: `$argon2id$${usernameKey}`, isAdmin: false, createdAt: T0, ...overrides };
}

function newSession(userId: string, overrides: Partial<NewSession> = {}): NewSession {
  return {
    id: uid('s'),
    userId,
    device: 'laptop',
    ip: '192.0.2.1',
    userAgent: 'UA/1',
    createdAt: T0,
    lastSeenAt: T0,
    expiresAt: T0 + 30 * DAY,
    accessExpiresAt: T0 + 5 * MINUTE + 5_000,
    ...overrides,
  };
}

function auditOf(type: AuditType, overrides: Partial<AuditInput> = {}): AuditInput {
  return { type, at: T0, actor: null, subject: null, ip: null, userAgent: null, detail: null, ...overrides };
}

function rotation(presented: string, successor: string, overrides: Partial<RotateInput> = {}): RotateInput {
  const now = overrides.now ?? T0 + MINUTE;
  return {
    presentedHash: hash(presented),
    successorHash: hash(successor),
    now,
    graceMs: GRACE,
    idleMs: IDLE,
    accessExpiresAt: now + 5 * MINUTE + 5_000,
    ip: '198.51.100.7',
    userAgent: 'UA/2',
    ...overrides,
  };
}

const REUSE_AUDIT = auditOf('refresh.reused', { detail: { reason: 'test' } });

/** A user with one session whose first refresh token is hash(`${label}:0`). */
async function userWithSession(store: Store, label: string, sessionOverrides: Partial<NewSession> = {}): Promise<{ user: NewUser; session: NewSession }> {
  const user = newUser(`${label}-user`);
  assert.ok(await store.createUser(user));
  const session = newSession(user.id, sessionOverrides);
  assert.deepEqual(await store.createSession(session, hash(`${label}:0`)), { kind: 'created' });
  return { user, session };
}

const count = (results: RotateResult[], kind: RotateResult['kind']): number => results.filter((r) => r.kind === kind).length;

/**
 * Runs `n` copies of `call` at once. A pooled store first opens its connections with a burst of
 * cheap reads, so the copies really overlap instead of queueing behind connection setup.
 */
async function atOnce<T>(store: Store, n: number, call: (i: number) => Promise<T>): Promise<T[]> {
  await Promise.all(range(1, n).map(() => store.revocationHead()));
  return Promise.all(range(1, n).map(call));
}

export function storeConformance(name: string, open: OpenStore): void {
  /** A test on a fresh, migrated store; the store is always cleaned up. */
  const test = (title: string, body: (store: Store) => Promise<void>): void => {
    it(title, { timeout: 30_000 }, async () => {
      const { store, cleanup } = await open();
      try {
        await store.migrate();
        await body(store);
      } finally {
        await cleanup();
      }
    });
  };

  describe(`store conformance: ${name}`, () => {
    describe('migrate and the log head', () => {
      test('a new log starts at seq 0 with a random log id', async (store) => {
        const head = await store.revocationHead();
        assert.equal(head.lastSeq, 0);
        assert.equal(typeof head.logId, 'string');
        assert.ok(head.logId.length >= 16, `log id ${head.logId} is too short to be random`);
        const other = await open();
        try {
          await other.store.migrate();
          assert.notEqual((await other.store.revocationHead()).logId, head.logId);
        } finally {
          await other.cleanup();
        }
      });

      test('migrate twice is a no-op: data, log id and seq survive', async (store) => {
        const { session } = await userWithSession(store, 'mig');
        await store.revokeSession({ sessionId: session.id, now: T0 + 1 });
        const before = await store.revocationHead();
        assert.equal(before.lastSeq, 1);
        await store.migrate();
        await store.migrate();
        assert.deepEqual(await store.revocationHead(), before);
        assert.equal((await store.listUsers()).length, 1);
        assert.equal((await store.getSession(session.id))?.revokedAt, T0 + 1);
      });
    });

    describe('users', () => {
      test('createUser returns the record, and the user is found by key and by id', async (store) => {
        const user = newUser('alice', { isAdmin: true });
        const expected = { ...user, lockedUntil: null };
        assert.deepEqual(await store.createUser(user), expected);
        assert.deepEqual(await store.findUserByKey('alice'), expected);
        assert.deepEqual(await store.findUserById(user.id), expected);
        assert.equal(await store.findUserByKey('bob'), null);
        assert.equal(await store.findUserById('u_missing'), null);
        const plain = newUser('bob');
        await store.createUser(plain);
        assert.equal((await store.findUserById(plain.id))?.isAdmin, false);
      });

      test('a taken username key returns null, keeps the first user, and writes no audit', async (store) => {
        const first = newUser('alice');
        assert.ok(await store.createUser(first, auditOf('user.created', { actor: first.id, subject: first.id })));
        const second = newUser('alice', { username: 'Alice' });
        assert.equal(await store.createUser(second, auditOf('user.created', { actor: second.id, subject: second.id })), null);
        assert.equal((await store.findUserByKey('alice'))?.id, first.id);
        assert.equal(await store.findUserById(second.id), null);
        const audit = await store.listAudit(0, 10);
        assert.equal(audit.length, 1);
        assert.equal(audit[0]?.subject, first.id);
      });

      test('createUser writes its audit event with the user', async (store) => {
        const user = newUser('carol');
        const event = auditOf('user.created', { actor: user.id, subject: user.id, ip: '192.0.2.9', userAgent: 'curl/8', detail: { admin: true } });
        await store.createUser(user, event);
        const [written, ...rest] = await store.listAudit(0, 10);
        assert.deepEqual(rest, []);
        assert.ok(written);
        assert.deepEqual({ ...written, id: 0 }, { ...event, id: 0 });
        assert.equal(typeof written.id, 'number');
        await store.createUser(newUser('dave'));
        assert.equal((await store.listAudit(0, 10)).length, 1, 'no audit event without an audit input');
      });

      test('listUsers sorts by username key in code-point order, whatever the collation', async (store) => {
        const keys = ['b', 'a_b', 'ab', 'a.b', 'a-b', 'aa', 'a+b', 'a@b', 'a1', 'é'];
        for (const key of keys) await store.createUser(newUser(key));
        assert.deepEqual(
          (await store.listUsers()).map((u) => u.usernameKey),
          [...keys].sort(),
        );
      });
    });

    describe('sessions', () => {
      test('createSession for an unknown user is no_user and writes nothing', async (store) => {
        const session = newSession('u_missing');
        assert.deepEqual(await store.createSession(session, hash('ghost:0'), auditOf('login.succeeded')), { kind: 'no_user' });
        assert.equal(await store.getSession(session.id), null);
        assert.deepEqual(await store.rotateRefreshToken(rotation('ghost:0', 'ghost:1'), REUSE_AUDIT), { kind: 'invalid' });
        assert.deepEqual(await store.listAudit(0, 10), []);
      });

      test('createSession stores the session, its refresh token and its audit event', async (store) => {
        const user = newUser('erin');
        await store.createUser(user);
        const session = newSession(user.id);
        const event = auditOf('login.succeeded', { actor: user.id, subject: user.id, detail: { session_id: session.id } });
        assert.deepEqual(await store.createSession(session, hash('erin:0'), event), { kind: 'created' });
        assert.deepEqual(await store.getSession(session.id), { ...session, revokedAt: null });
        assert.deepEqual(await store.findSessionByRefreshHash(hash('erin:0')), { ...session, revokedAt: null });
        assert.equal(await store.findSessionByRefreshHash(hash('erin:unknown')), null);
        assert.equal(await store.getSession('s_missing'), null);
        const audit = await store.listAudit(0, 10);
        assert.equal(audit.length, 1);
        assert.deepEqual(audit[0]?.detail, { session_id: session.id });
      });

      test('a NUL character in client-supplied text does not fail the write', async (store) => {
        const user = newUser('nul');
        await store.createUser(user);
        const session = newSession(user.id, { device: 'a\u0000b', userAgent: 'UA\u0000' });
        assert.deepEqual(await store.createSession(session, hash('nul:0'), auditOf('login.succeeded', { userAgent: 'UA\u0000', detail: { d: '\u0000' } })), { kind: 'created' });
        const stored = await store.getSession(session.id);
        // SQLite keeps U+0000; PostgreSQL text cannot hold it and stores U+FFFD
        assert.ok(stored?.device === 'a\u0000b' || stored?.device === 'a\uFFFDb', `device came back as ${JSON.stringify(stored?.device)}`);
        assert.ok(stored?.userAgent === 'UA\u0000' || stored?.userAgent === 'UA\uFFFD');
        assert.deepEqual((await store.listAudit(0, 1))[0]?.detail, { d: '\u0000' });
      });

      test('listLiveSessions: only live sessions of that user, newest first', async (store) => {
        const user = newUser('frank');
        const other = newUser('grace');
        await store.createUser(user);
        await store.createUser(other);
        const now = T0 + DAY;
        const live = [
          newSession(user.id, { id: 's_live_b', createdAt: T0 + 2, lastSeenAt: now - IDLE + 1 }),
          newSession(user.id, { id: 's_live_a', createdAt: T0 + 2 }),
          newSession(user.id, { id: 's_live_c', createdAt: T0 + 3, expiresAt: now + 1 }),
        ];
        const dead = [
          newSession(user.id, { id: 's_expired', expiresAt: now }),
          newSession(user.id, { id: 's_idle', lastSeenAt: now - IDLE }),
          newSession(user.id, { id: 's_revoked' }),
          newSession(other.id, { id: 's_other' }),
        ];
        for (const [i, s] of [...live, ...dead].entries()) assert.deepEqual(await store.createSession(s, hash(`live:${i}`)), { kind: 'created' });
        await store.revokeSession({ sessionId: 's_revoked', now: T0 + 5 });
        assert.deepEqual(
          (await store.listLiveSessions(user.id, now, IDLE)).map((s) => s.id),
          ['s_live_c', 's_live_a', 's_live_b'],
        );
        assert.deepEqual((await store.listLiveSessions(user.id, now, IDLE))[0], { ...live[2], revokedAt: null });
        assert.deepEqual(await store.listLiveSessions('u_missing', now, IDLE), []);
      });
    });

    describe('rotateRefreshToken', () => {
      test('a current token rotates: its successor is live, the session is touched', async (store) => {
        const { session } = await userWithSession(store, 'rot');
        const input = rotation('rot:0', 'rot:1');
        const expected: SessionRecord = { ...session, revokedAt: null, lastSeenAt: input.now, accessExpiresAt: input.accessExpiresAt, ip: '198.51.100.7', userAgent: 'UA/2' };
        assert.deepEqual(await store.rotateRefreshToken(input, REUSE_AUDIT), { kind: 'rotated', replay: false, session: expected });
        assert.deepEqual(await store.getSession(session.id), expected);
        assert.equal((await store.findSessionByRefreshHash(hash('rot:1')))?.id, session.id);
        assert.equal((await store.findSessionByRefreshHash(hash('rot:0')))?.id, session.id, 'a rotated token still names its session');

        // no ip or user agent: the stored ones stay; an earlier access expiry never shortens the stored one
        const next = rotation('rot:1', 'rot:2', { now: input.now + MINUTE, ip: null, userAgent: null, accessExpiresAt: input.accessExpiresAt - 1 });
        const result = await store.rotateRefreshToken(next, REUSE_AUDIT);
        assert.deepEqual(result, { kind: 'rotated', replay: false, session: { ...expected, lastSeenAt: next.now } });
        assert.deepEqual(await store.listAudit(0, 10), [], 'the reuse audit is written only on reuse');
        assert.equal((await store.revocationHead()).lastSeq, 0);
      });

      test('a replay inside the grace window gets the same successor (replay=true)', async (store) => {
        const { session } = await userWithSession(store, 'grace');
        const first = rotation('grace:0', 'grace:1');
        await store.rotateRefreshToken(first, REUSE_AUDIT);
        const replay = rotation('grace:0', 'grace:1', { now: first.now + GRACE - 1, ip: null, userAgent: null });
        const result = await store.rotateRefreshToken(replay, REUSE_AUDIT);
        assert.deepEqual(result, {
          kind: 'rotated',
          replay: true,
          session: { ...session, revokedAt: null, lastSeenAt: replay.now, accessExpiresAt: replay.accessExpiresAt, ip: '198.51.100.7', userAgent: 'UA/2' },
        });
        // the successor is still the current token
        const onward = await store.rotateRefreshToken(rotation('grace:1', 'grace:2', { now: replay.now + 1 }), REUSE_AUDIT);
        assert.equal(onward.kind === 'rotated' && onward.replay, false);
        assert.equal((await store.revocationHead()).lastSeq, 0);
      });

      test('reuse at the end of the grace window revokes the session and writes a log row and an audit event', async (store) => {
        const { session } = await userWithSession(store, 'reuse');
        const first = rotation('reuse:0', 'reuse:1');
        await store.rotateRefreshToken(first, REUSE_AUDIT);
        const late = rotation('reuse:0', 'reuse:1', { now: first.now + GRACE });
        const result = await store.rotateRefreshToken(late, REUSE_AUDIT);
        const row: RevocationRow = { seq: 1, kind: 'session', target: session.id, expiresAt: first.accessExpiresAt, createdAt: late.now };
        assert.deepEqual(result, {
          kind: 'reused',
          session: { ...session, lastSeenAt: first.now, accessExpiresAt: first.accessExpiresAt, ip: '198.51.100.7', userAgent: 'UA/2', revokedAt: late.now },
          revocations: [row],
        });
        assert.equal((await store.getSession(session.id))?.revokedAt, late.now);
        assert.equal((await store.revocationHead()).lastSeq, 1);
        assert.deepEqual(await store.readRevocations(0, 10, late.now), [row]);
        const audit = await store.listAudit(0, 10);
        assert.deepEqual(
          audit.map((e) => [e.type, e.detail]),
          [['refresh.reused', { reason: 'test' }]],
        );
        // the successor died with its session
        assert.deepEqual(await store.rotateRefreshToken(rotation('reuse:1', 'reuse:2', { now: late.now + 1 }), REUSE_AUDIT), { kind: 'invalid' });
        assert.equal((await store.revocationHead()).lastSeq, 1);
      });

      test('a replay with another successor, or any replay with grace 0, is reuse', async (store) => {
        const a = await userWithSession(store, 'other');
        await store.rotateRefreshToken(rotation('other:0', 'other:1'), REUSE_AUDIT);
        const wrongSuccessor = await store.rotateRefreshToken(rotation('other:0', 'other:X', { now: T0 + MINUTE + 1 }), REUSE_AUDIT);
        assert.equal(wrongSuccessor.kind, 'reused');

        const b = await userWithSession(store, 'nograce');
        await store.rotateRefreshToken(rotation('nograce:0', 'nograce:1', { graceMs: 0 }), REUSE_AUDIT);
        const again = await store.rotateRefreshToken(rotation('nograce:0', 'nograce:1', { graceMs: 0 }), REUSE_AUDIT);
        assert.equal(again.kind, 'reused');
        assert.deepEqual(
          (await store.readRevocations(0, 10, T0)).map((r) => r.target),
          [a.session.id, b.session.id],
        );
      });

      test('unknown token, revoked, expired or idle session: invalid, and nothing changes', async (store) => {
        assert.deepEqual(await store.rotateRefreshToken(rotation('nobody:0', 'nobody:1'), REUSE_AUDIT), { kind: 'invalid' });

        const revoked = await userWithSession(store, 'revoked');
        await store.revokeSession({ sessionId: revoked.session.id, now: T0 + 1 });
        assert.deepEqual(await store.rotateRefreshToken(rotation('revoked:0', 'revoked:1'), REUSE_AUDIT), { kind: 'invalid' });

        const expiring = await userWithSession(store, 'exp', { expiresAt: T0 + MINUTE });
        assert.deepEqual(await store.rotateRefreshToken(rotation('exp:0', 'exp:1', { now: T0 + MINUTE }), REUSE_AUDIT), { kind: 'invalid' });
        assert.deepEqual(await store.getSession(expiring.session.id), { ...expiring.session, revokedAt: null });
        assert.equal((await store.rotateRefreshToken(rotation('exp:0', 'exp:1', { now: T0 + MINUTE - 1 }), REUSE_AUDIT)).kind, 'rotated');

        const idle = await userWithSession(store, 'idle');
        assert.deepEqual(await store.rotateRefreshToken(rotation('idle:0', 'idle:1', { now: T0 + IDLE }), REUSE_AUDIT), { kind: 'invalid' });
        assert.deepEqual(await store.getSession(idle.session.id), { ...idle.session, revokedAt: null });
        assert.equal((await store.rotateRefreshToken(rotation('idle:0', 'idle:1', { now: T0 + IDLE - 1 }), REUSE_AUDIT)).kind, 'rotated');

        // an already-used token of a revoked session is invalid, not reuse: nothing more to revoke
        await store.revokeSession({ sessionId: idle.session.id, now: T0 + IDLE });
        assert.deepEqual(await store.rotateRefreshToken(rotation('idle:0', 'idle:1', { now: T0 + IDLE + GRACE * 2 }), REUSE_AUDIT), { kind: 'invalid' });
        assert.equal((await store.revocationHead()).lastSeq, 2);
        assert.deepEqual(await store.listAudit(0, 10), []);
      });

      test('10 concurrent rotations of one token with grace 0: one rotates, the next is reuse, the session ends revoked', async (store) => {
        const { session } = await userWithSession(store, 'race');
        const results = await atOnce(store, 10, () => store.rotateRefreshToken(rotation('race:0', 'race:1', { graceMs: 0 }), REUSE_AUDIT));
        assert.equal(count(results, 'rotated'), 1, JSON.stringify(results.map((r) => r.kind)));
        assert.equal(count(results, 'reused'), 1, JSON.stringify(results.map((r) => r.kind)));
        assert.equal(count(results, 'invalid'), 8);
        assert.equal((await store.getSession(session.id))?.revokedAt, T0 + MINUTE);
        assert.deepEqual(
          (await store.readRevocations(0, 10, T0)).map((r) => [r.seq, r.target]),
          [[1, session.id]],
        );
        assert.equal((await store.listAudit(0, 10)).length, 1);
      });

      test('10 concurrent rotations of one token inside the grace window: all get the one successor', async (store) => {
        const { session } = await userWithSession(store, 'burst');
        const results = await atOnce(store, 10, () => store.rotateRefreshToken(rotation('burst:0', 'burst:1'), REUSE_AUDIT));
        assert.equal(count(results, 'rotated'), 10, JSON.stringify(results.map((r) => r.kind)));
        assert.equal(results.filter((r) => r.kind === 'rotated' && !r.replay).length, 1);
        assert.equal((await store.getSession(session.id))?.revokedAt, null);
        // exactly one successor: it rotates once, and presenting it again later is reuse
        const next = await store.rotateRefreshToken(rotation('burst:1', 'burst:2', { now: T0 + 2 * MINUTE }), REUSE_AUDIT);
        assert.equal(next.kind === 'rotated' && next.replay, false);
        assert.equal((await store.rotateRefreshToken(rotation('burst:1', 'burst:3', { now: T0 + 2 * MINUTE + 1 }), REUSE_AUDIT)).kind, 'reused');
        assert.equal((await store.revocationHead()).lastSeq, 1);
      });
    });

    describe('revokeSession', () => {
      test('revokes once, with a row that expires with the session\'s last access token', async (store) => {
        const { user, session } = await userWithSession(store, 'one');
        const event = auditOf('session.revoked', { actor: user.id, subject: user.id });
        const rows = await store.revokeSession({ sessionId: session.id, userId: user.id, now: T0 + 7, audit: event });
        assert.deepEqual(rows, [{ seq: 1, kind: 'session', target: session.id, expiresAt: session.accessExpiresAt, createdAt: T0 + 7 }]);
        assert.deepEqual(await store.getSession(session.id), { ...session, revokedAt: T0 + 7 });
        assert.deepEqual(await store.listLiveSessions(user.id, T0 + 8, IDLE), []);
        assert.equal((await store.listAudit(0, 10)).length, 1);

        assert.deepEqual(await store.revokeSession({ sessionId: session.id, now: T0 + 9, audit: event }), [], 'already revoked');
        assert.equal((await store.getSession(session.id))?.revokedAt, T0 + 7);
        assert.equal((await store.listAudit(0, 10)).length, 1, 'no audit when nothing was revoked');
        assert.deepEqual(await store.revokeSession({ sessionId: 's_missing', now: T0 + 9 }), []);
        assert.equal((await store.revocationHead()).lastSeq, 1);
      });

      test('a session of another user is left alone', async (store) => {
        const { session } = await userWithSession(store, 'mine');
        assert.deepEqual(await store.revokeSession({ sessionId: session.id, userId: 'u_someone_else', now: T0 + 1, audit: auditOf('session.revoked') }), []);
        assert.equal((await store.getSession(session.id))?.revokedAt, null);
        assert.deepEqual(await store.listAudit(0, 10), []);
        assert.equal((await store.revocationHead()).lastSeq, 0);
      });

      test('concurrent revocations of one session write one row', async (store) => {
        const { session } = await userWithSession(store, 'twice');
        const results = await atOnce(store, 6, (i) => store.revokeSession({ sessionId: session.id, now: T0 + i }));
        assert.deepEqual(results.flat().map((r) => [r.seq, r.target]), [[1, session.id]]);
        assert.equal((await store.revocationHead()).lastSeq, 1);
      });
    });

    describe('revokeUserSessions', () => {
      test('revokes every live session of the user but the one excepted, oldest first', async (store) => {
        const user = newUser('henry');
        const other = newUser('ivy');
        await store.createUser(user);
        await store.createUser(other);
        const s1 = newSession(user.id, { id: 's_1', createdAt: T0 + 1 });
        const s2 = newSession(user.id, { id: 's_2', createdAt: T0 + 2, accessExpiresAt: T0 + 10 * MINUTE });
        const s3 = newSession(user.id, { id: 's_3', createdAt: T0 + 3, accessExpiresAt: T0 + 20 * MINUTE });
        const s4 = newSession(user.id, { id: 's_4', createdAt: T0 + 4 });
        const foreign = newSession(other.id, { id: 's_foreign' });
        for (const [i, s] of [s3, s1, s2, s4, foreign].entries()) await store.createSession(s, hash(`henry:${i}`));
        await store.revokeSession({ sessionId: s4.id, now: T0 + 5 });

        const event = auditOf('logout', { actor: user.id, detail: { scope: 'others' } });
        const rows = await store.revokeUserSessions({ userId: user.id, exceptSessionId: s2.id, now: T0 + 6, audit: event });
        assert.deepEqual(rows, [
          { seq: 2, kind: 'session', target: s1.id, expiresAt: s1.accessExpiresAt, createdAt: T0 + 6 },
          { seq: 3, kind: 'session', target: s3.id, expiresAt: s3.accessExpiresAt, createdAt: T0 + 6},
        ]);
        assert.equal((await store.getSession(s1.id))?.revokedAt, T0 + 6);
        assert.equal((await store.getSession(s3.id))?.revokedAt, T0 + 6);
        assert.equal((await store.getSession(s4.id))?.revokedAt, T0 + 5);
        assert.equal((await store.getSession(s2.id))?.revokedAt, null);
        assert.equal((await store.getSession(foreign.id))?.revokedAt, null);
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.detail), [{ scope: 'others' }]);

        const all = await store.revokeUserSessions({ userId: user.id, now: T0 + 7 });
        assert.deepEqual(all, [{ seq: 4, kind: 'session', target: s2.id, expiresAt: s2.accessExpiresAt, createdAt: T0 + 7 }]);
        assert.deepEqual(await store.revokeUserSessions({ userId: user.id, now: T0 + 8 }), []);
        assert.equal((await store.revocationHead()).lastSeq, 4);
      });

      test('a session created after the revocation, even in the same millisecond, is unaffected', async (store) => {
        const user = newUser('jack');
        await store.createUser(user);
        const before = newSession(user.id, { createdAt: T0 + 5 });
        await store.createSession(before, hash('jack:0'));
        const rows = await store.revokeUserSessions({ userId: user.id, now: T0 + 10, audit: auditOf('logout', { detail: { scope: 'all' } }) });
        assert.deepEqual(rows.map((r) => r.target), [before.id]);
        const after = newSession(user.id, { createdAt: T0 + 10, lastSeenAt: T0 + 10 });
        assert.deepEqual(await store.createSession(after, hash('jack:1')), { kind: 'created' });
        assert.deepEqual((await store.listLiveSessions(user.id, T0 + 10, IDLE)).map((s) => s.id), [after.id]);
        assert.equal((await store.rotateRefreshToken(rotation('jack:1', 'jack:2', { now: T0 + 11 }), REUSE_AUDIT)).kind, 'rotated');
        assert.deepEqual(await store.rotateRefreshToken(rotation('jack:0', 'jack:3', { now: T0 + 11 }), REUSE_AUDIT), { kind: 'invalid' });
      });

      test('a user with no sessions gets no rows, and the audit event is still written', async (store) => {
        const user = newUser('kate');
        await store.createUser(user);
        assert.deepEqual(await store.revokeUserSessions({ userId: user.id, now: T0, audit: auditOf('password.changed', { subject: user.id }) }), []);
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.type), ['password.changed']);
        assert.equal((await store.revocationHead()).lastSeq, 0);
      });

      test('concurrent logouts everywhere revoke each session once', async (store) => {
        const user = newUser('liam');
        await store.createUser(user);
        const ids: string[] = [];
        for (const i of range(1, 5)) {
          const s = newSession(user.id, { createdAt: T0 + i });
          ids.push(s.id);
          await store.createSession(s, hash(`liam:${i}`));
        }
        const results = await atOnce(store, 4, (i) => store.revokeUserSessions({ userId: user.id, now: T0 + 10 + i }));
        const rows = results.flat();
        assert.deepEqual(rows.map((r) => r.seq).sort((a, b) => a - b), range(1, 5));
        assert.deepEqual(rows.map((r) => r.target).sort(), [...ids].sort());
      });
    });

    describe('the revocation log', () => {
      test('seqs are contiguous and strictly increasing across every kind of revocation; paging by after/limit', async (store) => {
        const user = newUser('mia');
        await store.createUser(user);
        const sessions = range(1, 5).map((i) => newSession(user.id, { id: `s_${i}`, createdAt: T0 + i }));
        for (const [i, s] of sessions.entries()) await store.createSession(s, hash(`mia:${i}`));
        const written: RevocationRow[] = [];
        written.push(...(await store.revokeSession({ sessionId: 's_1', now: T0 + 10 })));
        await store.rotateRefreshToken(rotation('mia:1', 'mia:1b', { graceMs: 0 }), REUSE_AUDIT);
        const reused = await store.rotateRefreshToken(rotation('mia:1', 'mia:1b', { graceMs: 0 }), REUSE_AUDIT);
        assert.equal(reused.kind, 'reused');
        if (reused.kind === 'reused') written.push(...reused.revocations);
        written.push(...(await store.revokeUserSessions({ userId: user.id, now: T0 + MINUTE + 1 })));
        assert.deepEqual(written.map((r) => r.seq), [1, 2, 3, 4, 5]);
        assert.deepEqual(written.map((r) => r.target), ['s_1', 's_2', 's_3', 's_4', 's_5']);
        assert.equal((await store.revocationHead()).lastSeq, 5);

        const now = T0 + 2 * MINUTE;
        assert.deepEqual(await store.readRevocations(0, 100, now), written);
        assert.deepEqual(await store.readRevocations(0, 2, now), written.slice(0, 2));
        assert.deepEqual(await store.readRevocations(2, 2, now), written.slice(2, 4));
        assert.deepEqual(await store.readRevocations(4, 2, now), written.slice(4));
        assert.deepEqual(await store.readRevocations(5, 2, now), []);
      });

      test('rows are not returned once expired, though the head still counts them', async (store) => {
        const user = newUser('noah');
        await store.createUser(user);
        const short = newSession(user.id, { accessExpiresAt: T0 + 1_000 });
        const long = newSession(user.id, { accessExpiresAt: T0 + 2_000 });
        await store.createSession(short, hash('noah:0'));
        await store.createSession(long, hash('noah:1'));
        await store.revokeSession({ sessionId: short.id, now: T0 + 1 });
        await store.revokeSession({ sessionId: long.id, now: T0 + 2 });
        assert.deepEqual((await store.readRevocations(0, 10, T0 + 999)).map((r) => r.seq), [1, 2]);
        assert.deepEqual((await store.readRevocations(0, 10, T0 + 1_000)).map((r) => r.seq), [2]);
        assert.deepEqual(await store.readRevocations(0, 10, T0 + 2_000), []);
        assert.equal((await store.revocationHead()).lastSeq, 2);
      });

      test('8 concurrent revokers and a reader: the reader sees every seq exactly once, none skipped', async (store) => {
        const WORKERS = 8;
        const PER_WORKER = 50;
        const BATCH = 5; // the last few of each worker's sessions go in one revokeUserSessions
        const users = range(1, WORKERS).map((w) => newUser(`worker${w}`));
        const sessionsOf = new Map<string, string[]>();
        for (const user of users) {
          await store.createUser(user);
          const ids: string[] = [];
          for (const i of range(1, PER_WORKER)) {
            const s = newSession(user.id, { createdAt: T0 + i, accessExpiresAt: T0 + DAY });
            ids.push(s.id);
            await store.createSession(s, hash(`${user.id}:${i}`));
          }
          sessionsOf.set(user.id, ids);
        }
        const total = WORKERS * PER_WORKER;
        const now = T0 + MINUTE;

        let writersDone = false;
        const seen: number[] = [];
        const reader = (async () => {
          let cursor = 0;
          let lastHead = 0;
          for (;;) {
            const finished = writersDone;
            const head = await store.revocationHead();
            assert.ok(head.lastSeq >= lastHead, `head went back from ${lastHead} to ${head.lastSeq}`);
            lastHead = head.lastSeq;
            while (cursor < head.lastSeq) {
              const rows = await store.readRevocations(cursor, 16, now);
              // every seq up to the head has committed, and none has expired: a gap here is a lost revocation
              assert.ok(rows.length > 0, `head is at ${head.lastSeq} but nothing is readable after ${cursor}`);
              for (const row of rows) seen.push(row.seq);
              cursor = rows[rows.length - 1]!.seq;
            }
            // the head was read after the last writer committed: drained to it, the reader has everything
            if (finished) return;
            await new Promise((resolve) => setImmediate(resolve));
          }
        })();
        // a failed assertion in the reader is reported by `await reader` below, not as an unhandled rejection
        reader.catch(() => {});

        const workers = users.map(async (user) => {
          const ids = sessionsOf.get(user.id)!;
          const rows: RevocationRow[] = [];
          for (const id of ids.slice(0, PER_WORKER - BATCH)) rows.push(...(await store.revokeSession({ sessionId: id, now })));
          rows.push(...(await store.revokeUserSessions({ userId: user.id, now })));
          return rows;
        });
        let written: RevocationRow[];
        try {
          written = (await Promise.all(workers)).flat();
        } finally {
          writersDone = true;
        }
        await reader;

        assert.deepEqual(written.map((r) => r.seq).sort((a, b) => a - b), range(1, total));
        assert.equal(new Set(written.map((r) => r.target)).size, total);
        assert.deepEqual(seen, range(1, total));
        assert.equal((await store.revocationHead()).lastSeq, total);
      });
    });

    describe('pruneExpired', () => {
      test('deletes expired log rows, dead sessions whose tokens have expired (with their refresh tokens) and old audit', async (store) => {
        const user = newUser('olga');
        await store.createUser(user);
        const now = T0 + 10 * DAY;
        const past = now - 1;
        const spec: [string, Partial<NewSession>][] = [
          ['revoked_done', { accessExpiresAt: past }],
          ['revoked_pending', { accessExpiresAt: now + 1 }],
          ['live', { accessExpiresAt: past, lastSeenAt: now - MINUTE }],
          ['ended', { accessExpiresAt: now, expiresAt: now, lastSeenAt: now - MINUTE }],
          ['idle', { accessExpiresAt: past, lastSeenAt: now - IDLE }],
          ['idle_pending', { accessExpiresAt: now + 1, lastSeenAt: now - IDLE }],
        ];
        for (const [id, overrides] of spec) await store.createSession(newSession(user.id, { id, ...overrides }), hash(`prune:${id}`));
        await store.revokeSession({ sessionId: 'revoked_done', now: T0 + 1 });
        await store.revokeSession({ sessionId: 'revoked_pending', now: T0 + 2 });
        await store.appendAudit(auditOf('login.failed', { at: T0 - 1 }));
        await store.appendAudit(auditOf('login.failed', { at: T0 }));

        assert.deepEqual(await store.pruneExpired(now, IDLE, T0), { revocations: 1, sessions: 3, audit: 1 });
        for (const id of ['revoked_done', 'ended', 'idle']) assert.equal(await store.getSession(id), null, id);
        for (const id of ['revoked_pending', 'live', 'idle_pending']) assert.ok(await store.getSession(id), id);
        assert.equal(await store.findSessionByRefreshHash(hash('prune:revoked_done')), null);
        // the refresh tokens went with their sessions: the same hashes can be stored again
        for (const id of ['revoked_done', 'ended', 'idle']) {
          assert.deepEqual(await store.createSession(newSession(user.id, { createdAt: now, lastSeenAt: now, accessExpiresAt: now + MINUTE }), hash(`prune:${id}`)), { kind: 'created' });
        }
        assert.deepEqual((await store.readRevocations(0, 10, T0)).map((r) => [r.seq, r.target]), [[2, 'revoked_pending']]);
        assert.equal((await store.revocationHead()).lastSeq, 2);
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.at), [T0]);

        assert.deepEqual(await store.pruneExpired(now, IDLE, T0), { revocations: 0, sessions: 0, audit: 0 });
      });
    });

    describe('audit', () => {
      test('listAudit pages by id, oldest first, and round-trips every field', async (store) => {
        const events = [
          auditOf('login.failed', { at: T0 + 1, subject: 'u_1', ip: '2001:db8::1', userAgent: 'UA', detail: { reason: 'wrong_password', nested: { n: 1, list: ['a', true, null] } } }),
          auditOf('logout', { at: T0 + 2, actor: 'u_1', subject: 'u_1', detail: { scope: 'all' } }),
          auditOf('key.rotated', { at: T0 + 3 }),
          auditOf('user.locked', { at: T0 + 4, actor: 'admin', subject: 'u_2', detail: { until: T0 + DAY } }),
          auditOf('client.added', { at: T0 + 5, detail: {} }),
        ];
        for (const e of events) await store.appendAudit(e);
        const all = await store.listAudit(0, 100);
        assert.deepEqual(all.map(({ id: _id, ...rest }) => rest), events);
        const ids = all.map((e) => e.id);
        for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i]! > ids[i - 1]!, `ids not increasing: ${ids.join(',')}`);

        const page1 = await store.listAudit(0, 2);
        const page2 = await store.listAudit(page1[1]!.id, 2);
        const page3 = await store.listAudit(page2[1]!.id, 2);
        assert.deepEqual([...page1, ...page2, ...page3], all);
        assert.equal(page3.length, 1);
        assert.deepEqual(await store.listAudit(page3[0]!.id, 2), []);
      });
    });

    describe('signing keys', () => {
      const key = (kid: string): SigningKeyRecord => ({
        kid,
        alg: 'ES256',
        state: 'next',
        publicJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', kid }),
        sealedPrivateKey: randomBytes(48),
        createdAt: T0,
        activatedAt: null,
        retiredAt: null,
      });

      test('the first key is inserted as active; a second insert is refused', async (store) => {
        assert.deepEqual(await store.listSigningKeys(), []);
        const first = key('k1');
        assert.equal(await store.insertFirstSigningKey(first), true);
        const expected = { ...first, state: 'active', activatedAt: T0, retiredAt: null };
        assert.deepEqual(await store.listSigningKeys(), [expected]);
        assert.equal(await store.insertFirstSigningKey(key('k2')), false);
        assert.deepEqual(await store.listSigningKeys(), [expected]);
        assert.ok(Buffer.isBuffer((await store.listSigningKeys())[0]?.sealedPrivateKey));
      });

      test('concurrent first inserts: exactly one wins', async (store) => {
        const results = await atOnce(store, 6, (i) => store.insertFirstSigningKey({ ...key(`k${i}`), activatedAt: T0 + i }));
        assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
        const keys = await store.listSigningKeys();
        assert.equal(keys.length, 1);
        const winner = results.indexOf(true) + 1;
        assert.equal(keys[0]?.kid, `k${winner}`);
        assert.equal(keys[0]?.activatedAt, T0 + winner);
      });

      test('insertSigningKey stores a key as given; the ring lists by creation time, then kid', async (store) => {
        const next: SigningKeyRecord = { ...key('kb'), createdAt: T0 + 2 };
        const verify: SigningKeyRecord = { ...key('ka'), state: 'verify', createdAt: T0 + 2, activatedAt: T0 - DAY, retiredAt: T0 };
        const old: SigningKeyRecord = { ...key('kz'), state: 'disabled', createdAt: T0 + 1, activatedAt: T0, retiredAt: T0 + 1 };
        for (const k of [next, verify, old]) await store.insertSigningKey(k);
        assert.deepEqual(await store.listSigningKeys(), [old, verify, next]);
        await assert.rejects(store.insertSigningKey(next), 'a kid is unique');
      });

      test('activateSigningKey promotes a next key and retires the active one; anything else is false', async (store) => {
        await store.insertFirstSigningKey(key('k1'));
        await store.insertSigningKey(key('k2'));
        assert.equal(await store.activateSigningKey('k2', T0 + 9), true);
        const byKid = new Map((await store.listSigningKeys()).map((k) => [k.kid, k]));
        assert.deepEqual([byKid.get('k1')?.state, byKid.get('k1')?.activatedAt, byKid.get('k1')?.retiredAt], ['verify', T0, T0 + 9]);
        assert.deepEqual([byKid.get('k2')?.state, byKid.get('k2')?.activatedAt, byKid.get('k2')?.retiredAt], ['active', T0 + 9, null]);
        assert.equal(await store.activateSigningKey('k2', T0 + 10), false, 'already active');
        assert.equal(await store.activateSigningKey('k1', T0 + 10), false, 'verify-only keys are never made active again');
        assert.equal(await store.activateSigningKey('k_missing', T0 + 10), false);
        assert.equal((await store.listSigningKeys()).find((k) => k.kid === 'k2')?.activatedAt, T0 + 9);
      });

      test('concurrent activations of different next keys leave exactly one active key', async (store) => {
        await store.insertFirstSigningKey(key('k0'));
        for (const i of range(1, 4)) await store.insertSigningKey(key(`k${i}`));
        const results = await atOnce(store, 4, (i) => store.activateSigningKey(`k${i}`, T0 + i));
        assert.ok(results.some(Boolean));
        const states = (await store.listSigningKeys()).map((k) => k.state);
        assert.equal(states.filter((s) => s === 'active').length, 1, JSON.stringify(states));
        assert.equal(states.filter((s) => s === 'verify').length, results.filter(Boolean).length);
      });

      test('disableSigningKeys writes one key row per key not yet disabled; key rows never expire', async (store) => {
        await store.insertFirstSigningKey(key('k1'));
        await store.insertSigningKey({ ...key('k0'), state: 'verify', activatedAt: T0 - DAY, retiredAt: T0 - 1 });
        const event = auditOf('key.rotated', { detail: { emergency: true } });
        const rows = await store.disableSigningKeys(['k1', 'k_missing', 'k0'], T0 + 5, false, event);
        assert.deepEqual(rows, [
          { seq: 1, kind: 'key', target: 'k1', expiresAt: null, createdAt: T0 + 5 },
          { seq: 2, kind: 'key', target: 'k0', expiresAt: null, createdAt: T0 + 5},
        ]);
        const byKid = new Map((await store.listSigningKeys()).map((k) => [k.kid, k]));
        assert.deepEqual([byKid.get('k1')?.state, byKid.get('k1')?.retiredAt], ['disabled', T0 + 5]);
        assert.deepEqual([byKid.get('k0')?.state, byKid.get('k0')?.retiredAt], ['disabled', T0 - 1], 'an earlier retirement is kept');
        assert.deepEqual(await store.disableSigningKeys(['k1'], T0 + 6, false), [], 'already disabled');
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.detail), [{ emergency: true }]);

        const farFuture = T0 + 10_000 * DAY;
        assert.deepEqual(await store.readRevocations(0, 10, farFuture), rows);
        await store.pruneExpired(farFuture, IDLE, T0);
        assert.deepEqual(await store.readRevocations(0, 10, farFuture), rows);
        assert.equal((await store.revocationHead()).lastSeq, 2);
      });

      test('disableSigningKeys with revokeSessions also revokes every live session of every user, after the key rows', async (store) => {
        await store.insertFirstSigningKey(key('k1'));
        const a = await userWithSession(store, 'ka', { createdAt: T0 + 2 });
        const b = await userWithSession(store, 'kb', { createdAt: T0 + 1 });
        const gone = await userWithSession(store, 'kc', { createdAt: T0 + 3 });
        await store.revokeSession({ sessionId: gone.session.id, now: T0 + 4 });
        const rows = await store.disableSigningKeys(['k1'], T0 + 5, true);
        assert.deepEqual(rows, [
          { seq: 2, kind: 'key', target: 'k1', expiresAt: null, createdAt: T0 + 5 },
          { seq: 3, kind: 'session', target: b.session.id, expiresAt: b.session.accessExpiresAt, createdAt: T0 + 5},
          { seq: 4, kind: 'session', target: a.session.id, expiresAt: a.session.accessExpiresAt, createdAt: T0 + 5},
        ]);
        for (const s of [a.session, b.session]) assert.equal((await store.getSession(s.id))?.revokedAt, T0 + 5);
        assert.equal((await store.getSession(gone.session.id))?.revokedAt, T0 + 4);
        assert.deepEqual(await store.disableSigningKeys([], T0 + 6, true), [], 'nothing left to revoke');
      });

      test('concurrent disables of one key write one row', async (store) => {
        await store.insertFirstSigningKey(key('k1'));
        const results = await atOnce(store, 5, (i) => store.disableSigningKeys(['k1'], T0 + i, false));
        assert.deepEqual(results.flat().map((r) => [r.seq, r.target]), [[1, 'k1']]);
      });

      test('deleteSigningKey drops only a verify-only key', async (store) => {
        await store.insertFirstSigningKey(key('k_active'));
        await store.insertSigningKey(key('k_next'));
        await store.insertSigningKey({ ...key('k_verify'), state: 'verify' });
        await store.insertSigningKey({ ...key('k_disabled'), state: 'disabled' });
        for (const kid of ['k_active', 'k_next', 'k_verify', 'k_disabled', 'k_missing']) await store.deleteSigningKey(kid);
        assert.deepEqual((await store.listSigningKeys()).map((k) => k.kid).sort(), ['k_active', 'k_disabled', 'k_next']);
      });
    });

    describe('leases', () => {
      test('a lease is held until it expires, renewed by its holder, and released only by it', async (store) => {
        assert.equal(await store.tryLease('rotate', 'node-a', 1_000, T0), true);
        assert.equal(await store.tryLease('rotate', 'node-b', 1_000, T0 + 999), false);
        assert.equal(await store.tryLease('other', 'node-b', 1_000, T0 + 999), true, 'leases are per name');
        assert.equal(await store.tryLease('rotate', 'node-a', 1_000, T0 + 500), true, 'renewed until T0+1500');
        assert.equal(await store.tryLease('rotate', 'node-b', 1_000, T0 + 1_499), false);
        assert.equal(await store.tryLease('rotate', 'node-b', 1_000, T0 + 1_500), true, 'expired: taken over');
        assert.equal(await store.tryLease('rotate', 'node-a', 1_000, T0 + 1_501), false);
        await store.releaseLease('rotate', 'node-a');
        assert.equal(await store.tryLease('rotate', 'node-a', 1_000, T0 + 1_502), false, 'only the holder releases');
        await store.releaseLease('rotate', 'node-b');
        assert.equal(await store.tryLease('rotate', 'node-a', 1_000, T0 + 1_503), true);
      });

      test('concurrent takers of a free lease: exactly one gets it', async (store) => {
        const won = await atOnce(store, 8, (i) => store.tryLease('rotate', `node-${i}`, 60_000, T0));
        assert.equal(won.filter(Boolean).length, 1, JSON.stringify(won));
        const holder = `node-${won.indexOf(true) + 1}`;
        assert.equal(await store.tryLease('rotate', holder, 60_000, T0 + 1), true);
      });
    });

    describe('account changes', () => {
      test('lockUser sets the lock and revokes every session; logins before the lock ends are refused', async (store) => {
        assert.equal(await store.lockUser({ userId: 'u_missing', lockedUntil: T0 + DAY, now: T0, audit: auditOf('user.locked') }), null);
        const { user, session } = await userWithSession(store, 'lock');
        const second = newSession(user.id, { createdAt: T0 + 1 });
        await store.createSession(second, hash('lock:second'));
        const until = T0 + DAY;
        const rows = await store.lockUser({ userId: user.id, lockedUntil: until, now: T0 + 10, audit: auditOf('user.locked', { subject: user.id }) });
        assert.deepEqual(rows, [
          { seq: 1, kind: 'session', target: session.id, expiresAt: session.accessExpiresAt, createdAt: T0 + 10 },
          { seq: 2, kind: 'session', target: second.id, expiresAt: second.accessExpiresAt, createdAt: T0 + 10},
        ]);
        assert.equal((await store.findUserById(user.id))?.lockedUntil, until);
        assert.deepEqual(await store.createSession(newSession(user.id, { createdAt: until - 1 }), hash('lock:1')), { kind: 'locked', lockedUntil: until });
        assert.deepEqual(await store.createSession(newSession(user.id, { createdAt: until, lastSeenAt: until }), hash('lock:2')), { kind: 'created' });
        // a node whose clock is behind refreshes that session before the lock ends: refused
        assert.deepEqual(await store.rotateRefreshToken(rotation('lock:2', 'lock:3', { now: until - 1 }), REUSE_AUDIT), { kind: 'invalid' });
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.type), ['user.locked']);
      });

      test('unlockUser clears the lock; false for an unknown user', async (store) => {
        const user = newUser('unlock');
        await store.createUser(user);
        await store.lockUser({ userId: user.id, lockedUntil: T0 + DAY, now: T0 });
        assert.equal(await store.unlockUser(user.id, auditOf('user.unlocked')), true);
        assert.equal((await store.findUserById(user.id))?.lockedUntil, null);
        assert.deepEqual(await store.createSession(newSession(user.id, { createdAt: T0 + 1 }), hash('unlock:0')), { kind: 'created' });
        assert.equal(await store.unlockUser('u_missing', auditOf('user.unlocked')), false);
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.type), ['user.unlocked']);
      });

      test('setPassword replaces the hash and revokes every session but the one kept', async (store) => {
        assert.equal(await store.setPassword({ userId: 'u_missing', passwordHash: 'x', now: T0 }), null);
        const { user, session } = await userWithSession(store, 'pw');
        const kept = newSession(user.id, { createdAt: T0 + 1 });
        await store.createSession(kept, hash('pw:kept'));
        const rows = await store.setPassword({ userId: user.id, passwordHash: '$argon2id$new', exceptSessionId: kept.id, now: T0 + 2, audit: auditOf('password.changed') });
        assert.deepEqual(rows, [{ seq: 1, kind: 'session', target: session.id, expiresAt: session.accessExpiresAt, createdAt: T0 + 2 }]);
        assert.equal((await store.findUserById(user.id))?.passwordHash, '$argon2id$new');
        assert.equal((await store.getSession(kept.id))?.revokedAt, null);
        const all = await store.setPassword({ userId: user.id, passwordHash: '$argon2id$newer', now: T0 + 3 });
        assert.deepEqual(all?.map((r) => [r.seq, r.target]), [[2, kept.id]]);
        assert.equal((await store.findUserByKey(user.usernameKey))?.passwordHash, '$argon2id$newer');
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.type), ['password.changed']);
      });

      test('deleteUser revokes the sessions, then removes the user, its sessions and refresh tokens', async (store) => {
        assert.equal(await store.deleteUser('u_missing', T0), null);
        const { user, session } = await userWithSession(store, 'del');
        const survivor = await userWithSession(store, 'keep');
        const rows = await store.deleteUser(user.id, T0 + 3, auditOf('user.deleted', { subject: user.id }));
        assert.deepEqual(rows, [{ seq: 1, kind: 'session', target: session.id, expiresAt: session.accessExpiresAt, createdAt: T0 + 3 }]);
        assert.equal(await store.findUserById(user.id), null);
        assert.equal(await store.findUserByKey(user.usernameKey), null);
        assert.equal(await store.getSession(session.id), null);
        assert.equal(await store.findSessionByRefreshHash(hash('del:0')), null);
        assert.deepEqual(await store.readRevocations(0, 10, T0 + 3), rows);
        assert.deepEqual((await store.listUsers()).map((u) => u.id), [survivor.user.id]);
        assert.deepEqual(await store.createSession(newSession(user.id), hash('del:1')), { kind: 'no_user' });
        // the username is free again
        assert.ok(await store.createUser(newUser(user.usernameKey)));
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.type), ['user.deleted']);
      });
    });

    describe('clients', () => {
      const client = (id: string, name: string) => ({ id, name, secretHash: hash(`secret:${id}`), createdAt: T0 });

      test('create, find, list by name, remove; names and ids are unique', async (store) => {
        assert.equal(await store.createClient(client('c1', 'reports'), auditOf('client.added')), true);
        assert.equal(await store.createClient(client('c2', 'api')), true);
        assert.equal(await store.createClient(client('c3', 'reports'), auditOf('client.added')), false, 'name taken');
        assert.equal(await store.createClient(client('c1', 'billing')), false, 'id taken');
        assert.equal(await store.createClient(client('c4', 'API')), true);
        assert.deepEqual(await store.findClientById('c1'), client('c1', 'reports'));
        assert.equal(await store.findClientById('c3'), null);
        assert.deepEqual((await store.listClients()).map((c) => c.name), ['API', 'api', 'reports']);
        assert.equal(await store.removeClient('reports', auditOf('client.removed')), true);
        assert.equal(await store.removeClient('reports', auditOf('client.removed')), false);
        assert.equal(await store.findClientById('c1'), null);
        assert.deepEqual((await store.listAudit(0, 10)).map((e) => e.type), ['client.added', 'client.removed']);
      });
    });

    describe('throttles', () => {
      const policy = { threshold: 3, windowMs: MINUTE, baseBlockMs: 1_000, maxBlockMs: 4_000 };

      test('failures count up, block with a doubling bounded delay, expire, and clear', async (store) => {
        assert.equal(await store.getThrottle('user:a', T0), null);
        const states = [];
        for (const i of range(0, 4)) states.push(await store.recordThrottleFailure('user:a', T0 + i, policy));
        assert.deepEqual(states, [
          { failures: 1, blockedUntil: 0, expiresAt: T0 + MINUTE },
          { failures: 2, blockedUntil: 0, expiresAt: T0 + 1 + MINUTE },
          { failures: 3, blockedUntil: T0 + 2 + 1_000, expiresAt: T0 + 2 + MINUTE },
          { failures: 4, blockedUntil: T0 + 3 + 2_000, expiresAt: T0 + 3 + MINUTE },
          { failures: 5, blockedUntil: T0 + 4 + 4_000, expiresAt: T0 + 4 + MINUTE },
        ]);
        assert.deepEqual(await store.getThrottle('user:a', T0 + 5), states[4]);
        assert.equal(await store.getThrottle('user:b', T0 + 5), null, 'keys are separate');
        assert.equal(await store.getThrottle('user:a', T0 + 4 + MINUTE), null, 'expired');
        assert.deepEqual(await store.recordThrottleFailure('user:a', T0 + 4 + MINUTE, policy), { failures: 1, blockedUntil: 0, expiresAt: T0 + 4 + 2 * MINUTE });
        await store.clearThrottle('user:a');
        assert.equal(await store.getThrottle('user:a', T0 + 4 + MINUTE), null);
        assert.equal((await store.recordThrottleFailure('user:a', T0 + 4 + MINUTE, policy)).failures, 1);
      });

      test('concurrent failures are all counted', async (store) => {
        const states = await atOnce(store, 12, () => store.recordThrottleFailure('ip:192.0.2.1', T0, policy));
        assert.deepEqual(states.map((s) => s.failures).sort((a, b) => a - b), range(1, 12));
        assert.equal((await store.getThrottle('ip:192.0.2.1', T0))?.failures, 12);
      });
    });
  });
}
