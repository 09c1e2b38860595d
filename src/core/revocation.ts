// The live part of the revocation log, held in memory and checked on every authenticated
// request with no I/O (DESIGN.md points 3 to 6), and the sync loop that keeps it current.
import type { Bus } from '../bus/port.ts';
import type { RevocationHead, RevocationRow, Store } from '../store/port.ts';
import type { Clock } from './clock.ts';
import type { LatchMetrics } from './metrics.ts';
import { RevocationSet } from './revocation-set.ts';
import { CoalescedRun } from './coalesce.ts';

/**
 * The server's revocation state: the shared RevocationSet, fed with log rows. A session entry
 * is dropped at its expiry: by then every access token it could cover has expired too, so
 * memory stays bounded by (revocation rate × access-token TTL).
 */
export class RevocationState extends RevocationSet {
  /** Idempotent: applying a row twice changes nothing. */
  apply(row: Pick<RevocationRow, 'kind' | 'target' | 'expiresAt'>, nowMs: number): void {
    if (row.kind === 'key') this.disableKey(row.target);
    else if (row.expiresAt !== null) this.revokeSession(row.target, Math.ceil(row.expiresAt / 1000), nowMs);
  }
}

export interface RevocationSyncOptions {
  store: Store;
  bus: Bus;
  clock: Clock;
  /** ms between reads of the log's high-water mark */
  pollIntervalMs: number;
  /** ms without a confirmed high-water mark after which the state is stale */
  stalenessBudgetMs: number;
  /** called after rows are applied (key rows let the key ring reload) */
  onApplied?: (rows: RevocationRow[]) => void;
  onError?: (err: unknown) => void;
  metrics?: LatchMetrics;
}

const PAGE = 10_000;

/**
 * Keeps a RevocationState equal to the store's log. The poll of the high-water mark is the
 * mechanism; bus wake-ups only make it run sooner. A change of log_id (store replaced or
 * restored) or a head behind our cursor triggers a full resynchronisation.
 */
export class RevocationSync {
  private current = new RevocationState();
  private logId: string | null = null;
  private cursor = 0;
  /** ms at which the store's head was last confirmed */
  private confirmedAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private readonly sync: CoalescedRun;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly options: RevocationSyncOptions) {
    this.sync = new CoalescedRun(
      () => this.syncOnce(),
      (err) => this.options.onError?.(err),
      () => this.stopped,
    );
  }

  get state(): RevocationState {
    return this.current;
  }

  /** Loads the whole live log (a restart forgets nothing), then starts polling. */
  async start(): Promise<void> {
    await this.syncOnce();
    this.unsubscribe = this.options.bus.subscribe((seq) => {
      if (seq > this.cursor) this.wake();
    });
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.sync.settled();
  }

  /** True while the head was confirmed within the staleness budget. */
  isFresh(nowMs = this.options.clock.now()): boolean {
    return nowMs - this.confirmedAt <= this.options.stalenessBudgetMs;
  }

  get lastConfirmedAt(): number {
    return this.confirmedAt;
  }

  get position(): { logId: string | null; seq: number } {
    return { logId: this.logId, seq: this.cursor };
  }

  /**
   * Applies rows this process just committed, before the response leaves, so the node that
   * revoked refuses the token on the very next request. The cursor does not move: rows other
   * writers committed in between are still read by the next sync.
   */
  applyLocal(rows: RevocationRow[]): void {
    if (rows.length === 0) return;
    const now = this.options.clock.now();
    for (const row of rows) this.state.apply(row, now);
    this.options.metrics?.revocationsWritten(rows.length);
    this.options.onApplied?.(rows);
    const last = rows[rows.length - 1]!.seq;
    void this.options.bus.publish(last).catch((err: unknown) => this.options.onError?.(err));
    this.wake();
  }

  /** Runs a sync now (coalesced with one already running). */
  wake(): Promise<void> {
    return this.sync.wake();
  }

  /** A fixed-rate poll: the next read starts on the beat, not an interval after the last one ended. */
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setInterval(() => void this.wake(), this.options.pollIntervalMs);
    this.timer.unref();
  }

  private async syncOnce(): Promise<void> {
    const { store, clock } = this.options;
    const head: RevocationHead = await store.revocationHead();
    if (head.logId !== this.logId || head.lastSeq < this.cursor) {
      await this.resync(head);
    } else {
      await this.catchUp(head.lastSeq);
    }
    this.confirmedAt = clock.now();
  }

  private async catchUp(target: number): Promise<void> {
    const { store, clock } = this.options;
    while (this.cursor < target) {
      const rows = await store.readRevocations(this.cursor, PAGE, clock.now());
      if (rows.length === 0) {
        // every row up to target has expired and been pruned
        this.cursor = target;
        break;
      }
      const now = clock.now();
      for (const row of rows) this.current.apply(row, now);
      this.cursor = rows[rows.length - 1]!.seq;
      this.options.metrics?.revocationsApplied(rows, now);
      this.options.onApplied?.(rows);
    }
  }

  /** Reads the whole live log into a new state and swaps it in, so no reader sees a partial snapshot. */
  private async resync(head: RevocationHead): Promise<void> {
    const { store, clock } = this.options;
    const next = new RevocationState();
    let cursor = 0;
    const all: RevocationRow[] = [];
    for (;;) {
      const rows = await store.readRevocations(cursor, PAGE, clock.now());
      const now = clock.now();
      for (const row of rows) next.apply(row, now);
      all.push(...rows.filter((r) => r.kind === 'key'));
      if (rows.length > 0) cursor = rows[rows.length - 1]!.seq;
      if (rows.length < PAGE) break;
    }
    this.current = next;
    this.logId = head.logId;
    this.cursor = Math.max(cursor, head.lastSeq);
    if (all.length > 0) this.options.onApplied?.(all);
  }

  /** Drops expired entries from memory. */
  prune(): number {
    return this.state.prune(this.options.clock.now());
  }
}
