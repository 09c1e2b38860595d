// Failed-login counters in Redis, shared by every node (API.md Throttling). One Lua script
// applies the same rule as nextThrottleState atomically, so concurrent failures on several
// nodes are all counted. When Redis does not answer, the counters fall back to the store
// (shared by every node too): throttling never fails open, and a Redis outage never locks
// anyone out.
import { Redis } from 'ioredis';
import type { Store, ThrottlePolicy, ThrottleState } from '../port.ts';
import type { ThrottleCounters } from '../../core/throttle.ts';

const RECORD = `
local v = redis.call('HMGET', KEYS[1], 'f', 'e')
local now = tonumber(ARGV[1])
local failures = 0
if v[1] and v[2] and tonumber(v[2]) > now then failures = tonumber(v[1]) end
failures = failures + 1
local over = failures - tonumber(ARGV[2])
local blocked = 0
if over >= 0 then
  blocked = now + math.min(tonumber(ARGV[4]) * (2 ^ math.min(over, 30)), tonumber(ARGV[5]))
end
local expires = math.max(now + tonumber(ARGV[3]), blocked)
redis.call('HSET', KEYS[1], 'f', failures, 'b', blocked, 'e', expires)
redis.call('PEXPIREAT', KEYS[1], expires)
return {failures, blocked, expires}
`;

/** How long a counter command may take before the store answers instead. */
const COMMAND_TIMEOUT_MS = 500;
/** After a failure, how long the store alone answers before Redis is tried again. */
const DOWN_FOR_MS = 2_000;

export class RedisThrottleCounters implements ThrottleCounters {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly fallback: Pick<Store, 'getThrottle' | 'recordThrottleFailure' | 'clearThrottle'>,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: 2_000,
      connectionName: 'latch-throttle',
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    });
    this.redis.on('error', () => {}); // reported per command below; a dead socket must not crash the process
    this.redis.defineCommand('latchThrottleRecord', { numberOfKeys: 1, lua: RECORD });
  }

  private key(key: string): string {
    return `${this.prefix}throttle:${key}`;
  }

  /** ms until which Redis is taken as down: logins go straight to the store instead of waiting on timeouts */
  private downUntil = 0;

  private async orFallback<T>(primary: () => Promise<T>, secondary: () => Promise<T>): Promise<T> {
    if (Date.now() < this.downUntil) return secondary();
    try {
      return await primary();
    } catch (err) {
      this.downUntil = Date.now() + DOWN_FOR_MS;
      this.onError(err);
      return secondary();
    }
  }

  async getThrottle(key: string, now: number): Promise<ThrottleState | null> {
    return this.orFallback(
      async () => {
        const [f, b, e] = await this.redis.hmget(this.key(key), 'f', 'b', 'e');
        if (f === null || b === null || e === null || Number(e) <= now) return this.fallback.getThrottle(key, now);
        return { failures: Number(f), blockedUntil: Number(b), expiresAt: Number(e) };
      },
      () => this.fallback.getThrottle(key, now),
    );
  }

  async recordThrottleFailure(key: string, now: number, policy: ThrottlePolicy): Promise<ThrottleState> {
    return this.orFallback(
      async () => {
        const run = (this.redis as unknown as { latchThrottleRecord: (k: string, ...a: number[]) => Promise<[number, number, number]> }).latchThrottleRecord;
        const [failures, blockedUntil, expiresAt] = await run.call(this.redis, this.key(key), now, policy.threshold, policy.windowMs, policy.baseBlockMs, policy.maxBlockMs);
        return { failures, blockedUntil, expiresAt };
      },
      () => this.fallback.recordThrottleFailure(key, now, policy),
    );
  }

  async clearThrottle(key: string): Promise<void> {
    await this.orFallback(
      async () => {
        await this.redis.del(this.key(key));
        await this.fallback.clearThrottle(key);
      },
      () => this.fallback.clearThrottle(key),
    );
  }

  async close(): Promise<void> {
    try {
      await Promise.race([this.redis.quit(), new Promise((r) => setTimeout(r, 1000))]);
    } catch {
      // already gone
    }
    this.redis.disconnect();
  }
}
