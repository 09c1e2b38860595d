// The revocation bus of the scale-out setup (DESIGN.md point 6): Redis pub/sub carries "the log
// moved to seq N" between nodes. It only wakes readers sooner; the store poll is the mechanism,
// so every Redis failure here is reported through onError and swallowed, never thrown into a logout.
import { Redis, type RedisOptions } from 'ioredis';
import type { Bus } from '../port.ts';

export interface RedisBusOptions {
  /** redis:// or rediss:// URL */
  url: string;
  /** pub/sub channel; default 'latch:revocations' */
  channel?: string;
  /**
   * CLIENT SETNAME prefix of the two connections ('-pub' and '-sub' are appended), so an operator
   * can find them in CLIENT LIST; default 'latch-bus'
   */
  connectionName?: string;
  onError?: (err: unknown) => void;
  /** called whenever `connected` changes */
  onStatus?: (connected: boolean) => void;
}

export const DEFAULT_CHANNEL = 'latch:revocations';

/** How long open() waits for Redis before handing back a bus that keeps connecting in the background. */
const OPEN_WAIT_MS = 2_000;
/** How long close() lets QUIT drain before it drops the socket. */
const QUIT_WAIT_MS = 1_000;
/** A publish on a half-open socket must not wait for TCP to notice; a late wake-up is worthless. */
const PUBLISH_TIMEOUT_MS = 1_000;
/** Caps one connection attempt to a host that drops SYNs, so the retry loop keeps turning. */
const CONNECT_TIMEOUT_MS = 2_000;

/** Reconnect delay: grows linearly, capped, and never gives up (Redis may be away for hours). */
export function reconnectDelay(attempt: number): number {
  return Math.min(attempt * 100, 2_000);
}

/** A message's seq, or null for anything but a positive safe integer in plain decimal. */
export function parseSeq(message: string): number | null {
  if (!/^[1-9][0-9]*$/.test(message)) return null;
  const seq = Number(message);
  return Number.isSafeInteger(seq) ? seq : null;
}

type Role = 'publisher' | 'subscriber';

export class RedisBus implements Bus {
  /**
   * Connects and resolves once subscribed, or after OPEN_WAIT_MS with the bus still connecting:
   * a node must boot while Redis is down, since polling alone keeps it correct.
   */
  static async open(options: RedisBusOptions): Promise<RedisBus> {
    const bus = new RedisBus(options);
    await bus.untilConnected(OPEN_WAIT_MS);
    return bus;
  }

  readonly channel: string;
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly listeners = new Set<(seq: number) => void>();
  private readonly connectedWaiters = new Set<() => void>();
  /** true between a confirmed SUBSCRIBE and the subscriber's next close */
  private subscribed = false;
  /** the last value given to onStatus */
  private reportedConnected = false;
  /**
   * Connection errors already reported since the connection was last ready: while Redis is down
   * ioredis emits one per retry, and one report per outage (plus onStatus) is what a log wants.
   */
  private readonly quietUntilReady = new Set<Role>();
  private closing: Promise<void> | null = null;

  constructor(private readonly options: RedisBusOptions) {
    this.channel = options.channel ?? DEFAULT_CHANNEL;
    const name = options.connectionName ?? 'latch-bus';
    const common: RedisOptions = {
      retryStrategy: reconnectDelay,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Fail fast while disconnected: queued wake-ups would only arrive late, after the poll.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      // Subscribing is done on every 'ready' below, which also covers a Redis that was down at
      // start (ioredis only resubscribes channels a previous connection had confirmed).
      autoResubscribe: false,
    };
    this.publisher = new Redis(options.url, { ...common, connectionName: `${name}-pub`, commandTimeout: PUBLISH_TIMEOUT_MS });
    this.subscriber = new Redis(options.url, { ...common, connectionName: `${name}-sub` });
    this.watch(this.publisher, 'publisher');
    this.watch(this.subscriber, 'subscriber');
    this.subscriber.on('ready', () => this.resubscribe());
    this.subscriber.on('message', (channel: string, message: string) => this.deliver(channel, message));
  }

  /** Both connections are up and the channel is subscribed (for health and metrics). */
  get connected(): boolean {
    return this.closing === null && this.subscribed && this.subscriber.status === 'ready' && this.publisher.status === 'ready';
  }

  /** Resolves after the send or its failure; a failure goes to onError, never to the logout that published. */
  async publish(seq: number): Promise<void> {
    if (this.closing) return;
    if (!Number.isSafeInteger(seq) || seq <= 0) {
      this.report(new TypeError(`redis bus: seq must be a positive safe integer, got ${String(seq)}`));
      return;
    }
    try {
      await this.publisher.publish(this.channel, String(seq));
    } catch (err) {
      this.report(new Error(`redis bus: publish of seq ${seq} failed`, { cause: err }));
    }
  }

  subscribe(onWake: (seq: number) => void): () => void {
    // A wrapper per call, so subscribing the same function twice yields two independent subscriptions.
    const listener = (seq: number): void => onWake(seq);
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Idempotent; resolves within about QUIT_WAIT_MS whatever state Redis is in. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.listeners.clear();
    for (const resolve of this.connectedWaiters) resolve();
    this.connectedWaiters.clear();
    await Promise.all([quitWithin(this.publisher, QUIT_WAIT_MS), quitWithin(this.subscriber, QUIT_WAIT_MS)]);
    this.subscribed = false;
    this.updateStatus();
  }

  private watch(connection: Redis, role: Role): void {
    // Without an 'error' listener a Redis outage would be an uncaught exception.
    connection.on('error', (err: unknown) => {
      if (this.closing || this.quietUntilReady.has(role)) return;
      this.quietUntilReady.add(role);
      this.report(new Error(`redis bus: ${role} connection error`, { cause: err }));
    });
    connection.on('ready', () => {
      this.quietUntilReady.delete(role);
      this.updateStatus();
    });
    connection.on('close', () => {
      if (role === 'subscriber') this.subscribed = false;
      this.updateStatus();
    });
  }

  private resubscribe(): void {
    if (this.closing) return;
    this.subscriber.subscribe(this.channel).then(
      () => {
        this.subscribed = true;
        this.updateStatus();
      },
      // The connection dropped in between; the next 'ready' subscribes again.
      (err: unknown) => {
        if (!this.closing) this.report(new Error('redis bus: subscribe failed', { cause: err }));
      },
    );
  }

  private deliver(channel: string, message: string): void {
    if (channel !== this.channel) return;
    // Anyone who can publish on the channel can send garbage; a wake-up carries nothing to trust.
    const seq = parseSeq(message);
    if (seq === null) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(seq);
      } catch (err) {
        this.report(err);
      }
    }
  }

  private updateStatus(): void {
    const connected = this.connected;
    if (connected) {
      for (const resolve of this.connectedWaiters) resolve();
      this.connectedWaiters.clear();
    }
    if (connected === this.reportedConnected) return;
    this.reportedConnected = connected;
    try {
      this.options.onStatus?.(connected);
    } catch (err) {
      this.report(err);
    }
  }

  private untilConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.connectedWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.connectedWaiters.add(done);
    });
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err);
    } catch {
      // A throwing error handler must not turn a Redis hiccup into a crash.
    }
  }
}

/** QUIT lets pending replies drain; past the deadline (or with no live socket) the socket is dropped. */
async function quitWithin(connection: Redis, timeoutMs: number): Promise<void> {
  if (connection.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([connection.quit().then(
      () => {},
      () => {},
    ), deadline]);
    clearTimeout(timer);
  }
  if (connection.status !== 'end') connection.disconnect();
}
