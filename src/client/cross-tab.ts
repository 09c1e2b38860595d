// What the tabs of one browser tell each other over a BroadcastChannel, and a small mutex on
// top of it for browsers without Web Locks: one refresh of the shared cookie at a time.

export type TabMessage =
  | { t: 'logout' }
  /** the server ended the session: every tab sharing its cookie is logged out */
  | { t: 'ended' }
  | { t: 'login' }
  | { t: 'want' | 'hold' | 'free'; id: string };

/** The part of BroadcastChannel the SDK uses (a fake in tests). */
export interface ChannelLike {
  postMessage(message: TabMessage): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  close(): void;
}

/** The part of the Web Locks API (navigator.locks) the SDK uses. */
export interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

// long enough for a message to cross tabs under load, short enough not to be felt
const CLAIM_MS = 50;
// a holder that went silent this long (closed tab, frozen page) no longer blocks anyone
const STALE_MS = 5_000;
const MAX_DEFERRALS = 5;

/**
 * Claim, wait, hold: a tab announces it wants the lock, waits CLAIM_MS, and backs off if a
 * tab with a smaller id also wants it or already holds it. Rare races that slip through are
 * covered by the server's grace window, which hands both tabs the same successor.
 */
export class ChannelMutex {
  private holder: string | null = null;
  private heldSince = 0;
  private holding = false;
  /** when each other tab last said it wants the lock */
  private readonly rivals = new Map<string, number>();
  private waiters: (() => void)[] = [];

  constructor(
    private readonly id: string,
    private readonly post: (message: TabMessage) => void,
    private readonly timers: Timers,
    private readonly now: () => number,
  ) {}

  onMessage(message: TabMessage): void {
    if (!('id' in message) || message.id === this.id) return;
    if (message.t === 'want') {
      if (this.holding) this.post({ t: 'hold', id: this.id });
      else this.rivals.set(message.id, this.now());
    } else if (message.t === 'hold') {
      this.holder = message.id;
      this.heldSince = this.now();
    } else {
      if (this.holder === message.id) this.holder = null;
      this.rivals.delete(message.id);
      this.wakeAll();
    }
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    for (let deferrals = 0; deferrals < MAX_DEFERRALS; deferrals++) {
      if (this.holder !== null && this.now() - this.heldSince < STALE_MS) {
        await this.waitForFree();
        continue;
      }
      this.holder = null;
      // a want that arrived just before ours counts too: both tabs must see the same contest
      const since = this.now() - CLAIM_MS;
      this.post({ t: 'want', id: this.id });
      await this.sleep(CLAIM_MS);
      const beaten = this.holder !== null || [...this.rivals].some(([rival, at]) => rival < this.id && at >= since);
      if (!beaten) break;
      await this.waitForFree();
    }
    this.holding = true;
    this.post({ t: 'hold', id: this.id });
    try {
      return await task();
    } finally {
      this.holding = false;
      this.post({ t: 'free', id: this.id });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => void this.timers.setTimeout(resolve, ms));
  }

  private waitForFree(): Promise<void> {
    return new Promise((resolve) => {
      const handle = this.timers.setTimeout(done, STALE_MS);
      const timers = this.timers;
      function done(): void {
        timers.clearTimeout(handle);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
