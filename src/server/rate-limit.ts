// Request-rate limits per client (or per address for callers without a credential): token
// buckets held in this node's memory. They bound what one caller can make a node do; they
// are not a security boundary, so a per-node count is enough. LATCH_RATE_LIMITS=off lifts them.
import { LatchError } from '../core/errors.ts';

export interface BucketPolicy {
  /** requests a caller may make at once */
  burst: number;
  /** requests per second the bucket refills with */
  perSecond: number;
}

/** Buckets tracked at most; past it, buckets that have refilled completely are forgotten first. */
const MAX_BUCKETS = 10_000;

interface Bucket {
  tokens: number;
  /** ms of the last refill */
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly policy: BucketPolicy,
    private readonly enabled: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request from the caller's bucket; returns 0 when allowed, else the seconds to wait. */
  take(key: string): number {
    if (!this.enabled) return 0;
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= MAX_BUCKETS) this.evict(now);
      bucket = { tokens: this.policy.burst, at: now };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.policy.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.policy.perSecond);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.policy.perSecond));
  }

  /** Throws 429 rate_limited with Retry-After when the caller's bucket is empty. */
  check(key: string): void {
    const wait = this.take(key);
    if (wait > 0) throw new LatchError('rate_limited', { retryAfter: wait });
  }

  /** A full bucket says nothing a new one would not: forget those, then the oldest if still too many. */
  private evict(now: number): void {
    const fullAfterMs = (this.policy.burst / this.policy.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) if (now - bucket.at >= fullAfterMs) this.buckets.delete(key);
    if (this.buckets.size < MAX_BUCKETS) return;
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (this.buckets.size < MAX_BUCKETS / 2) break;
    }
  }
}

/** Counts open long-lived connections (revocation streams) per client. */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly maxPerKey: number,
    private readonly enabled: boolean,
  ) {}

  /** Reserves one connection for the key; returns the release function, or null when the key is at its limit. */
  acquire(key: string): (() => void) | null {
    const count = this.open.get(key) ?? 0;
    if (this.enabled && count >= this.maxPerKey) return null;
    this.open.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }
}

/** The limits of the endpoints resource servers and OAuth clients call. */
export const LIMITS = {
  /** a resource server that introspects instead of verifying locally: every request of its own */
  introspection: { burst: 200, perSecond: 100 },
  /** revocations end sessions: a client has little reason to send many */
  revocation: { burst: 30, perSecond: 5 },
  /** a snapshot is up to 10,000 rows: a verifier needs one per resync */
  feedPage: { burst: 60, perSecond: 10 },
  /** token refreshes through /oauth/token, per address */
  token: { burst: 30, perSecond: 5 },
  /** a verifier holds one stream; a few more cover restarts and several processes per client */
  streamsPerClient: 32,
} as const;
