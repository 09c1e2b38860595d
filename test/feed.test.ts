// The revocation feed (API.md "Revocation feed"): client authentication, the paged snapshot,
// and the event stream (events with id = seq, heartbeats only while fresh, Last-Event-ID
// resume, the resync rule, clean ends on disconnect and on shutdown).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ManualClock } from '../src/core/clock.ts';
import { ClientRegistry } from '../src/core/clients.ts';
import { bearer, harness, json, login, registerAndLogin, sleep, type Harness } from './helpers.ts';
import { addClient, basicAuth, liveLatch, type LiveLatch } from './fixtures/loopback.ts';
import { openStream } from './fixtures/event-stream.ts';

const PASSWORD = 'correct horse battery';

interface Page {
  log_id: string;
  events: { seq: number; kind: string; id: string; expires_at?: number }[];
  last_seq: number;
  more: boolean;
}

describe('GET /v1/revocations', () => {
  const clock = new ManualClock(Date.now());
  let h: Harness;
  let auth: string;
  before(async () => {
    h = await harness({}, { clock });
    auth = basicAuth(await addClient(h.opened.latch, 'feed-reader'));
  });
  after(async () => h.close());

  const page = async (query = ''): Promise<Page> => {
    const res = await h.app.inject({ url: `/v1/revocations${query}`, headers: { authorization: auth } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    return json(res) as unknown as Page;
  };

  it('needs a client credential: 401 invalid_client with the Basic challenge otherwise', async () => {
    const registry = new ClientRegistry(h.opened.latch.store, h.opened.latch.clock);
    const removed = await addClient(h.opened.latch, 'gone-soon');
    await registry.remove('gone-soon');
    const user = await registerAndLogin(h.app, 'mallory', PASSWORD);
    for (const authorization of [
      undefined,
      'Basic',
      'Basic !!!notbase64',
      `Basic ${Buffer.from('no-colon').toString('base64')}`,
      `Basic ${Buffer.from('unknown-id:some-secret').toString('base64')}`,
      basicAuth({ id: 'x', secret: 'y' }),
      basicAuth(removed),
      `Bearer ${user.access_token}`,
    ]) {
      const res = await h.app.inject({ url: '/v1/revocations', headers: authorization ? { authorization } : {} });
      assert.equal(res.statusCode, 401, `${authorization}: ${res.body}`);
      assert.equal(res.headers['www-authenticate'], 'Basic realm="latch"');
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(json(res).code, 'invalid_client');
    }
  });

  it('accepts a credential whose id and secret are form-urlencoded (RFC 6749 §2.3.1)', async () => {
    const client = await addClient(h.opened.latch, 'encoded');
    const encode = (s: string): string => [...s].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join('');
    const res = await h.app.inject({ url: '/v1/revocations', headers: { authorization: `Basic ${Buffer.from(`${encode(client.id)}:${encode(client.secret)}`).toString('base64')}` } });
    assert.equal(res.statusCode, 200);
  });

  it('is a snapshot of the live log: session rows with NumericDate expires_at, key rows without', async () => {
    const empty = await page();
    const t = await registerAndLogin(h.app, 'ana', PASSWORD);
    await login(h.app, 'ana', PASSWORD);
    await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token), payload: { scope: 'all' } });
    const rows = await h.opened.latch.store.disableSigningKeys(['no-such-kid'], clock.now(), false);
    assert.deepEqual(rows, [], 'an unknown kid is not disabled');
    const full = await page('?after=0');
    assert.equal(full.log_id, empty.log_id);
    assert.equal(full.more, false);
    assert.equal(full.events.length, 2);
    assert.equal(full.last_seq, full.events[1]!.seq);
    const exp = (JSON.parse(Buffer.from(t.access_token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    for (const event of full.events) {
      assert.equal(event.kind, 'session');
      assert.ok(Number.isInteger(event.expires_at) && event.expires_at! >= exp, 'expires when its last token does, in seconds');
    }
    assert.ok(full.events.some((e) => e.id === t.session_id));
  });

  it('pages with limit and more, oldest first, and answers nothing after last_seq', async () => {
    for (let i = 0; i < 3; i++) {
      const t = await login(h.app, 'ana', PASSWORD);
      await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) });
    }
    const all = await page();
    const first = await page('?after=0&limit=2');
    assert.equal(first.more, true);
    assert.deepEqual(first.events, all.events.slice(0, 2));
    const rest: Page['events'] = [];
    let cursor = first.events[1]!.seq;
    for (;;) {
      const next = await page(`?after=${cursor}&limit=2`);
      rest.push(...next.events);
      if (!next.more) break;
      cursor = next.events[next.events.length - 1]!.seq;
    }
    assert.deepEqual([...first.events, ...rest], all.events);
    const past = await page(`?after=${all.last_seq + 5}`);
    assert.deepEqual(past.events, []);
    assert.equal(past.last_seq, all.last_seq, 'a reader past last_seq sees it and resynchronises');
  });

  it('drops rows once they have expired, and keeps last_seq', async () => {
    const before = await page();
    clock.advance(3_600_000);
    const later = await page();
    assert.deepEqual(later.events, []);
    assert.equal(later.last_seq, before.last_seq);
    clock.set(Date.now());
  });

  it('a disabled key is a row without expires_at', async () => {
    const kid = h.opened.latch.keyRing.signingKey().kid;
    const rows = await h.opened.latch.store.disableSigningKeys([kid], clock.now(), false);
    h.opened.latch.revocations.applyLocal(rows);
    const all = await page();
    const key = all.events.find((e) => e.kind === 'key');
    assert.deepEqual(key, { seq: all.last_seq, kind: 'key', id: kid });
  });

  it('bad parameters are 400 problem+json, never 500', async () => {
    for (const query of ['?after=-1', '?after=abc', '?after=1.5', '?limit=0', '?limit=10001', '?limit=x', '?after=9999999999999999999']) {
      const res = await h.app.inject({ url: `/v1/revocations${query}`, headers: { authorization: auth } });
      assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
      assert.equal(json(res).code, 'invalid_request');
    }
  });
});

describe('GET /v1/revocations/stream', () => {
  let live: LiveLatch;
  let auth: string;
  before(async () => {
    live = await liveLatch({ overrides: { stalenessBudget: 1, pollInterval: 20 } });
    auth = basicAuth(await addClient(live.opened.latch, 'streamer'));
  });
  after(async () => live.close());

  const streamUrl = (query = ''): string => `${live.url}/v1/revocations/stream${query}`;

  it('needs a client credential', async () => {
    const res = await fetch(streamUrl());
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="latch"');
    assert.equal(((await res.json()) as { code: string }).code, 'invalid_client');
  });

  it('bad parameters are 400 problem+json before any stream opens', async () => {
    for (const [query, headers] of [
      ['?after=x', {}],
      ['?log_id=has%20space', {}],
      ['', { 'last-event-id': 'not-a-seq' }],
    ] as const) {
      const res = await fetch(streamUrl(query), { headers: { authorization: auth, ...headers } });
      assert.equal(res.status, 400, query);
      assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      assert.equal(((await res.json()) as { code: string }).code, 'invalid_request');
    }
  });

  it('is described in /openapi.json with its error codes', async () => {
    const doc = (await (await fetch(`${live.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, { 'x-error-codes'?: string[] }> }>> };
    for (const path of ['/v1/revocations', '/v1/revocations/stream']) {
      assert.deepEqual(doc.paths[path]?.get?.responses['401']?.['x-error-codes'], ['invalid_client'], path);
    }
    assert.ok(doc.paths['/.well-known/oauth-authorization-server']?.get);
  });

  it('sends every row after the cursor as a revocation event (id = seq), then heartbeats {log_id, last_seq}', async () => {
    const t = await registerAndLogin(live.app, 'ben', PASSWORD);
    await live.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) });
    const stream = await openStream(streamUrl('?after=0'), { authorization: auth });
    try {
      assert.equal(stream.status, 200);
      assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(stream.headers.get('cache-control'), 'no-store');
      const event = await stream.next((e) => e.event === 'revocation');
      const data = JSON.parse(event.data) as { seq: number; kind: string; id: string; expires_at: number };
      assert.equal(event.id, String(data.seq));
      assert.equal(data.kind, 'session');
      assert.equal(data.id, t.session_id);
      const beat = JSON.parse((await stream.next((e) => e.event === 'heartbeat')).data) as { log_id: string; last_seq: number };
      const head = await live.opened.latch.store.revocationHead();
      assert.deepEqual(beat, { log_id: head.logId, last_seq: head.lastSeq });

      // pushed at once, not at the next heartbeat
      const u = await login(live.app, 'ben', PASSWORD);
      const started = Date.now();
      await live.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(u.access_token) });
      const pushed = await stream.next((e) => e.event === 'revocation');
      assert.equal((JSON.parse(pushed.data) as { id: string }).id, u.session_id);
      assert.ok(Date.now() - started < 500, `pushed after ${Date.now() - started} ms`);
    } finally {
      stream.close();
    }
  });

  it('heartbeats at least every 2 s while fresh', async () => {
    const stream = await openStream(streamUrl(), { authorization: auth });
    try {
      await stream.next((e) => e.event === 'heartbeat');
      const at: number[] = [Date.now()];
      for (let i = 0; i < 2; i++) {
        await stream.next((e) => e.event === 'heartbeat', 2_500);
        at.push(Date.now());
      }
      for (let i = 1; i < at.length; i++) assert.ok(at[i]! - at[i - 1]! <= 2_000, `gap ${at[i]! - at[i - 1]!} ms`);
    } finally {
      stream.close();
    }
  });

  it('resumes from Last-Event-ID (which wins over the first URL’s after)', async () => {
    const head = await live.opened.latch.store.revocationHead();
    const t = await login(live.app, 'ben', PASSWORD);
    await live.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) });
    const stream = await openStream(streamUrl('?after=0'), { authorization: auth, 'last-event-id': String(head.lastSeq) });
    try {
      await stream.next((e) => e.event === 'heartbeat');
      const revocations = stream.events.filter((e) => e.event === 'revocation');
      assert.deepEqual(
        revocations.map((e) => (JSON.parse(e.data) as { id: string }).id),
        [t.session_id],
      );
    } finally {
      stream.close();
    }
  });

  it('tells a reader from another epoch, or past last_seq, to resync, and ends', async () => {
    const head = await live.opened.latch.store.revocationHead();
    const other = await openStream(streamUrl(`?after=${head.lastSeq}&log_id=some-older-epoch`), { authorization: auth });
    const resync = await other.next((e) => e.event === 'resync');
    assert.deepEqual(JSON.parse(resync.data), { log_id: head.logId, last_seq: head.lastSeq, reason: 'log_id_changed' });
    await other.ended;
    assert.equal(other.events.some((e) => e.event === 'heartbeat'), false);

    const ahead = await openStream(streamUrl(`?after=${head.lastSeq + 10}&log_id=${head.logId}`), { authorization: auth });
    assert.deepEqual(JSON.parse((await ahead.next((e) => e.event === 'resync')).data), { log_id: head.logId, last_seq: head.lastSeq, reason: 'cursor_ahead' });
    await ahead.ended;
  });

  it('sends no heartbeat while the server is stale (its store does not answer), and resumes after', async () => {
    const stream = await openStream(streamUrl(), { authorization: auth });
    const store = live.opened.latch.store;
    const original = store.revocationHead.bind(store);
    try {
      await stream.next((e) => e.event === 'heartbeat');
      store.revocationHead = async () => {
        throw new Error('the database is down');
      };
      await sleep(100);
      const count = stream.events.filter((e) => e.event === 'heartbeat').length;
      await sleep(2_200);
      assert.equal(stream.events.filter((e) => e.event === 'heartbeat').length, count, 'no heartbeat while it cannot confirm the log');
      assert.equal(live.opened.latch.revocations.isFresh(), false);
      store.revocationHead = original;
      await stream.next((e) => e.event === 'heartbeat', 3_000);
    } finally {
      store.revocationHead = original;
      stream.close();
    }
  });

  it('streams a catch-up larger than its send buffer in full, waiting for the reader (no silent gap)', async () => {
    const head = await live.opened.latch.store.revocationHead();
    const rows = 30_000;
    const db = new Database(join(live.dir, 'latch.db'));
    const insert = db.prepare("INSERT INTO revocations (seq, kind, target, expires_at, created_at) VALUES (?, 'session', ?, ?, ?)");
    const now = Date.now();
    db.transaction(() => {
      for (let i = 1; i <= rows; i++) insert.run(head.lastSeq + i, `bulk-session-${i}`, now + 600_000, now);
      db.prepare('UPDATE revocation_head SET last_seq = ? WHERE id = 1').run(head.lastSeq + rows);
    })();
    db.close();
    const stream = await openStream(streamUrl(`?after=${head.lastSeq}`), { authorization: auth });
    try {
      const beat = await stream.next((e) => e.event === 'heartbeat' && (JSON.parse(e.data) as { last_seq: number }).last_seq === head.lastSeq + rows, 20_000);
      assert.ok(beat);
      const seqs = stream.events.filter((e) => e.event === 'revocation').map((e) => Number(e.id));
      assert.equal(seqs.length, rows);
      assert.deepEqual([seqs[0], seqs[seqs.length - 1]], [head.lastSeq + 1, head.lastSeq + rows]);
    } finally {
      stream.close();
    }
  });

  it('releases a stream when its reader disconnects (a reader may reconnect forever)', async () => {
    const { lastSeq } = await live.opened.latch.store.revocationHead();
    for (let i = 0; i < 40; i++) {
      const stream = await openStream(streamUrl(`?after=${lastSeq}`), { authorization: auth });
      assert.equal(stream.status, 200, `connection ${i}`);
      await stream.next((e) => e.event === 'heartbeat');
      stream.close();
      await sleep(5);
    }
    await sleep(50);
    const open = await Promise.all(Array.from({ length: 32 }, () => openStream(streamUrl(`?after=${lastSeq}`), { authorization: auth })));
    try {
      assert.deepEqual(new Set(open.map((s) => s.status)), new Set([200]), 'the 32 allowed are all free again');
      const extra = await fetch(streamUrl(), { headers: { authorization: auth } });
      assert.equal(extra.status, 429, 'a 33rd open stream of one client is refused');
      assert.equal(((await extra.json()) as { code: string }).code, 'rate_limited');
    } finally {
      for (const s of open) s.close();
    }
  });
});

describe('shutdown with open streams', () => {
  it('app.close() ends every stream and does not hang', async () => {
    const live = await liveLatch();
    const auth = basicAuth(await addClient(live.opened.latch, 'closer'));
    const streams = await Promise.all([1, 2, 3].map(() => openStream(`${live.url}/v1/revocations/stream`, { authorization: auth })));
    await Promise.all(streams.map((s) => s.next((e) => e.event === 'heartbeat')));
    const started = Date.now();
    await live.close();
    assert.ok(Date.now() - started < 2_000, `close took ${Date.now() - started} ms`);
    await Promise.all(streams.map((s) => s.ended));
  });
});
