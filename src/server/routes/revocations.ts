// The revocation feed for resource servers (HTTP Basic with a client credential): a paged
// snapshot, and an event stream that each connection reads from the store at its own cursor,
// woken by this node's revocation listener, so no row is ever skipped or served from memory.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import { CoalescedRun } from '../../core/coalesce.ts';
import type { ClientRegistry } from '../../core/clients.ts';
import { LatchError } from '../../core/errors.ts';
import type { Latch } from '../../core/latch.ts';
import type { ClientRecord, RevocationHead, RevocationRow } from '../../store/port.ts';
import type { App } from '../app-types.ts';
import { authenticateClient, BASIC_CHALLENGE, ClientAuthError } from '../client-auth.ts';
import { ConnectionLimiter, LIMITS, RateLimiter } from '../rate-limit.ts';

/** Rows per page of the snapshot, and the most a client may ask for. */
export const PAGE_LIMIT = 10_000;
/** API.md promises a heartbeat at least every 2 s; every second leaves verifiers a margin. */
export const HEARTBEAT_MS = 1_000;
/** How soon an EventSource should reconnect after a drop (the SSE `retry:` field). */
const RECONNECT_MS = 250;
/** A removed client's open streams end within this long. */
const RECHECK_CLIENT_MS = 15_000;
/** Past this much unread, a pump waits for the reader before it sends more (a catch-up can be large). */
const HIGH_WATER_BYTES = 1 << 20;
/** A reader that reads nothing for this long is dropped; it resumes by seq when it reconnects. */
const STALLED_READER_MS = 30_000;

declare module 'fastify' {
  interface FastifyRequest {
    feedClient: ClientRecord | null;
  }
}

/** One log row as the feed shows it: expires_at in NumericDate seconds, absent for keys. */
export interface FeedEvent {
  seq: number;
  kind: 'session' | 'key';
  id: string;
  expires_at?: number;
}

export const toFeedEvent = (row: RevocationRow): FeedEvent => ({
  seq: row.seq,
  kind: row.kind,
  id: row.target,
  ...(row.expiresAt !== null ? { expires_at: Math.ceil(row.expiresAt / 1000) } : {}),
});

const Seq = Type.String({ pattern: '^[0-9]{1,15}$', description: 'a log sequence number' });

const FeedEventSchema = Type.Object({
  seq: Type.Integer(),
  kind: Type.Union([Type.Literal('session'), Type.Literal('key')]),
  id: Type.String(),
  expires_at: Type.Optional(Type.Integer({ description: 'NumericDate (seconds); absent for keys, which never expire' })),
});

export interface RevocationRouteOptions {
  clients: ClientRegistry;
  rateLimits: boolean;
}

/**
 * Reads the rows after `after` up to the head read first, so every row returned is at or below
 * `last_seq`. A row committed between the two reads is left for the next request.
 */
async function readPage(latch: Latch, after: number, limit: number): Promise<{ head: RevocationHead; rows: RevocationRow[]; more: boolean }> {
  const head = await latch.store.revocationHead();
  if (after >= head.lastSeq) return { head, rows: [], more: false };
  const read = await latch.store.readRevocations(after, limit, latch.clock.now());
  const rows = read.filter((r) => r.seq <= head.lastSeq);
  const more = read.length === limit && rows.length === read.length && rows[rows.length - 1]!.seq < head.lastSeq;
  return { head, rows, more };
}

export function revocationRoutes(app: App, latch: Latch, options: RevocationRouteOptions): void {
  const pages = new RateLimiter(LIMITS.feedPage, options.rateLimits);
  const streamsPerClient = new ConnectionLimiter(LIMITS.streamsPerClient, options.rateLimits);
  const open = new Set<FeedStream>();

  app.decorateRequest('feedClient', null);
  // app.close() must not wait for streams that never end by themselves
  app.addHook('preClose', async () => {
    for (const stream of open) stream.close();
  });

  /** onRequest: HTTP Basic with a client credential, or 401 with the Basic challenge. */
  const requireClient = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      const auth = await authenticateClient(request, options.clients);
      if (!('client' in auth)) throw new ClientAuthError('invalid');
      request.feedClient = auth.client;
    } catch (err) {
      if (!(err instanceof ClientAuthError)) throw err;
      reply.header('www-authenticate', BASIC_CHALLENGE);
      throw new LatchError('invalid_client', { cause: err.reason });
    }
  };

  const clientOf = (request: FastifyRequest): ClientRecord => {
    if (!request.feedClient) throw new LatchError('invalid_client');
    return request.feedClient;
  };

  app.get(
    '/v1/revocations',
    {
      schema: {
        summary: 'The live revocation log after a sequence number (a snapshot from after=0)',
        querystring: Type.Object({ after: Type.Optional(Seq), limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })) }),
        response: {
          200: Type.Object({
            log_id: Type.String(),
            events: Type.Array(FeedEventSchema),
            last_seq: Type.Integer(),
            more: Type.Boolean(),
          }),
        },
      },
      config: { errors: ['invalid_request', 'invalid_client', 'rate_limited', 'store_unavailable'] },
      onRequest: requireClient,
    },
    async (request, reply) => {
      pages.check(clientOf(request).id);
      const after = Number(request.query.after ?? '0');
      const limit = request.query.limit === undefined ? PAGE_LIMIT : Number(request.query.limit);
      if (limit < 1 || limit > PAGE_LIMIT) throw new LatchError('invalid_request', { detail: `querystring.limit must be from 1 to ${PAGE_LIMIT}` });
      const page = await readPage(latch, after, limit);
      return reply.header('cache-control', 'no-store').send({ log_id: page.head.logId, events: page.rows.map(toFeedEvent), last_seq: page.head.lastSeq, more: page.more });
    },
  );

  app.get(
    '/v1/revocations/stream',
    {
      schema: {
        summary: 'Server-sent events: one `revocation` per log row, `heartbeat` {log_id, last_seq} while fresh, `resync` when the reader must start over',
        querystring: Type.Object({ after: Type.Optional(Seq), log_id: Type.Optional(Type.String({ pattern: '^[\\x21-\\x7e]{1,128}$' })) }),
        headers: Type.Object({ 'last-event-id': Type.Optional(Seq) }),
      },
      config: { errors: ['invalid_request', 'invalid_client', 'rate_limited', 'store_unavailable'] },
      onRequest: requireClient,
    },
    async (request, reply) => {
      const client = clientOf(request);
      // a reconnecting EventSource repeats its first URL: the Last-Event-ID it adds is the newer cursor
      const cursor = Number(request.headers['last-event-id'] ?? request.query.after ?? '0');
      const head = await latch.store.revocationHead();
      const release = streamsPerClient.acquire(client.id);
      if (!release) throw new LatchError('rate_limited', { retryAfter: 5, detail: `at most ${LIMITS.streamsPerClient} open streams per client` });
      reply.hijack();
      const stream = new FeedStream(latch, options.clients, client, reply.raw, { cursor, logId: request.query.log_id ?? null, head }, () => {
        release();
        open.delete(stream);
      });
      open.add(stream);
      // the response's close, not the request's: an IncomingMessage closes once its (empty) body is read
      reply.raw.once('close', () => stream.close());
      stream.start();
    },
  );
}

/** One open event stream: its own cursor into the store's log, pumped on every wake-up and heartbeat. */
class FeedStream {
  private cursor: number;
  /** the epoch this reader's cursor belongs to */
  private readonly logId: string;
  private readonly expectedLogId: string | null;
  private readonly firstHead: RevocationHead;
  private closed = false;
  // a store that does not answer sends no heartbeat, so the reader turns stale, as it must
  private readonly pumping = new CoalescedRun(
    () => this.pump(),
    () => {},
    () => this.closed,
  );
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private clientCheckedAt = Date.now();

  constructor(
    private readonly latch: Latch,
    private readonly clients: ClientRegistry,
    private readonly client: ClientRecord,
    private readonly res: ServerResponse,
    start: { cursor: number; logId: string | null; head: RevocationHead },
    private readonly onClosed: () => void,
  ) {
    this.cursor = start.cursor;
    this.expectedLogId = start.logId;
    this.logId = start.logId ?? start.head.logId;
    this.firstHead = start.head;
  }

  start(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // proxies such as nginx must pass each event on at once
      'x-accel-buffering': 'no',
      // a stream's connection is never reused: once it ends (reader gone, resync, shutdown) the
      // socket closes, so app.close() does not wait on a keep-alive socket that was a stream
      connection: 'close',
    });
    this.write(`retry: ${RECONNECT_MS}\n\n`);
    if (this.expectedLogId !== null && this.expectedLogId !== this.firstHead.logId) return this.resync(this.firstHead, 'log_id_changed');
    if (this.cursor > this.firstHead.lastSeq) return this.resync(this.firstHead, 'cursor_ahead');
    this.unsubscribe = this.latch.onRevocations(() => void this.wake());
    this.schedule();
    void this.wake();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.unsubscribe?.();
    if (!this.res.writableEnded) this.res.end();
    this.onClosed();
  }

  private write(chunk: string): void {
    if (!this.closed) this.res.write(chunk);
  }

  /** Waits until the reader has taken what was sent; drops a reader that stalls. */
  private async drained(): Promise<void> {
    if (this.closed || this.res.writableLength <= HIGH_WATER_BYTES) return;
    const drained = await new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.res.off('drain', onDrain);
        this.res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = (): void => done(true);
      const onClose = (): void => done(false);
      const timer = setTimeout(() => done(false), STALLED_READER_MS);
      this.res.on('drain', onDrain);
      this.res.on('close', onClose);
    });
    if (!drained) {
      // holding more for a reader this far behind only costs memory; it resumes from its Last-Event-ID
      this.res.destroy();
      this.close();
    }
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.wake().finally(() => this.schedule());
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Runs a pump now, coalesced with one already running. */
  private wake(): Promise<void> {
    return this.pumping.wake();
  }

  /** Sends every live row after the cursor up to the head, then a heartbeat if this node is fresh. */
  private async pump(): Promise<void> {
    if (this.closed) return;
    if (Date.now() - this.clientCheckedAt > RECHECK_CLIENT_MS) {
      this.clientCheckedAt = Date.now();
      if (!(await this.clients.exists(this.client.id))) return this.close();
    }
    const { store, clock } = this.latch;
    const head = await store.revocationHead();
    if (head.logId !== this.logId) return this.resync(head, 'log_id_changed');
    if (this.cursor > head.lastSeq) return this.resync(head, 'cursor_ahead');
    while (this.cursor < head.lastSeq && !this.closed) {
      const read = await store.readRevocations(this.cursor, PAGE_LIMIT, clock.now());
      const rows = read.filter((r) => r.seq <= head.lastSeq);
      let chunk = '';
      for (const row of rows) chunk += `event: revocation\nid: ${row.seq}\ndata: ${JSON.stringify(toFeedEvent(row))}\n\n`;
      if (chunk) this.write(chunk);
      await this.drained();
      // a short page, or one that reached past the head, means nothing at or below the head is left unread
      if (read.length < PAGE_LIMIT || rows.length < read.length) this.cursor = head.lastSeq;
      else this.cursor = rows[rows.length - 1]!.seq;
    }
    if (this.closed || !this.latch.revocations.isFresh()) return;
    this.write(`event: heartbeat\ndata: ${JSON.stringify({ log_id: head.logId, last_seq: this.cursor })}\n\n`);
  }

  /** The reader's cursor means nothing in this log: tell it to start over from a snapshot, and end. */
  private resync(head: RevocationHead, reason: 'log_id_changed' | 'cursor_ahead'): void {
    this.write(`event: resync\ndata: ${JSON.stringify({ log_id: head.logId, last_seq: head.lastSeq, reason })}\n\n`);
    this.close();
  }
}
