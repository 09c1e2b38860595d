// Failed-login throttling after OWASP's device cookies (DESIGN.md point 9, API.md Throttling).
// A device that has logged in to an account carries a signed device token and keeps its own
// allowance; unknown devices share one budget per username and one per IP (IPv6 per /64).
// An attacker can slow guessing down but cannot lock the owner's known device out.
import { isIPv4, isIPv6 } from 'node:net';
import type { Store, ThrottlePolicy, ThrottleState } from '../store/port.ts';
import { hmacSha256, randomId, safeEqual } from './secrets.ts';

/** Where failure counters live: the store on one node, Redis when nodes share them. */
export type ThrottleCounters = Pick<Store, 'getThrottle' | 'recordThrottleFailure' | 'clearThrottle'>;

export interface ThrottleSettings {
  deviceFailures: number;
  userFailures: number;
  ipFailures: number;
  /** seconds */
  maxDelay: number;
}

export interface Device {
  userId: string;
  deviceId: string;
}

const HOUR = 3_600_000;
const QUARTER = 900_000;

/** Signed device tokens: `v1.<userId>.<deviceId>.<mac>`, MAC = HMAC-SHA256 under a master subkey. */
export class DeviceTokens {
  constructor(private readonly key: Buffer) {}

  issue(userId: string, deviceId: string = randomId()): { token: string; deviceId: string } {
    const body = `v1.${userId}.${deviceId}`;
    return { token: `${body}.${hmacSha256(this.key, body).toString('base64url')}`, deviceId };
  }

  /** The device a token names, or null for anything not signed by us. */
  verify(token: string | null | undefined): Device | null {
    if (typeof token !== 'string' || token.length > 200) return null;
    const parts = token.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1' || !/^[A-Za-z0-9_-]+$/.test(parts[1]!) || !/^[A-Za-z0-9_-]+$/.test(parts[2]!)) return null;
    const expected = hmacSha256(this.key, `v1.${parts[1]}.${parts[2]}`);
    const given = Buffer.from(parts[3]!, 'base64url');
    return safeEqual(given, expected) ? { userId: parts[1]!, deviceId: parts[2]! } : null;
  }
}

/** The throttling bucket of an address: IPv4 as is, IPv6 by its /64 (one customer's prefix). */
export function ipBucket(ip: string | null): string {
  if (!ip) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return ip.slice(0, 64);
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** `counted`: a failure counter of this attempt's own scope exists (a success then clears it). */
export type ThrottleVerdict = { blocked: false; counted: boolean } | { blocked: true; retryAfter: number; scope: 'device' | 'username' | 'ip' };

export class LoginThrottle {
  private readonly devicePolicy: ThrottlePolicy;
  private readonly userPolicy: ThrottlePolicy;
  private readonly ipPolicy: ThrottlePolicy;

  constructor(
    private readonly counters: ThrottleCounters,
    settings: ThrottleSettings,
  ) {
    const maxBlockMs = settings.maxDelay * 1000;
    // a known device: its allowance per hour, then blocked for the rest of that hour
    this.devicePolicy = { threshold: settings.deviceFailures, windowMs: HOUR, baseBlockMs: Math.min(HOUR, maxBlockMs), maxBlockMs };
    // unknown devices: after N failures in a row, 1 s, doubling, up to the maximum
    this.userPolicy = { threshold: settings.userFailures, windowMs: HOUR, baseBlockMs: 1000, maxBlockMs };
    this.ipPolicy = { threshold: settings.ipFailures, windowMs: QUARTER, baseBlockMs: 1000, maxBlockMs };
  }

  private keys(usernameKey: string, device: Device | null, ip: string | null): { scope: 'device' | 'username' | 'ip'; key: string; policy: ThrottlePolicy }[] {
    if (device) return [{ scope: 'device', key: `device:${device.deviceId}:${device.userId}`, policy: this.devicePolicy }];
    return [
      { scope: 'username', key: `user:${usernameKey}`, policy: this.userPolicy },
      { scope: 'ip', key: `ip:${ipBucket(ip)}`, policy: this.ipPolicy },
    ];
  }

  /** Before any password work: is this attempt refused outright? */
  async check(usernameKey: string, device: Device | null, ip: string | null, now: number): Promise<ThrottleVerdict> {
    let counted = false;
    for (const { scope, key } of this.keys(usernameKey, device, ip)) {
      const state: ThrottleState | null = await this.counters.getThrottle(key, now);
      if (state && state.blockedUntil > now) return { blocked: true, retryAfter: Math.max(1, Math.ceil((state.blockedUntil - now) / 1000)), scope };
      if (state && scope !== 'ip') counted = true;
    }
    return { blocked: false, counted };
  }

  async recordFailure(usernameKey: string, device: Device | null, ip: string | null, now: number): Promise<void> {
    for (const { key, policy } of this.keys(usernameKey, device, ip)) await this.counters.recordThrottleFailure(key, now, policy);
  }

  /**
   * The current-password check of a password change, by someone holding a session: its own
   * counter per user, the unknown-device rule (a stolen access token must not make a fast oracle).
   */
  async checkPasswordChange(userId: string, now: number): Promise<ThrottleVerdict> {
    const state = await this.counters.getThrottle(`password:${userId}`, now);
    if (state && state.blockedUntil > now) return { blocked: true, retryAfter: Math.max(1, Math.ceil((state.blockedUntil - now) / 1000)), scope: 'username' };
    return { blocked: false, counted: state !== null };
  }

  async recordPasswordChangeFailure(userId: string, now: number): Promise<void> {
    await this.counters.recordThrottleFailure(`password:${userId}`, now, this.userPolicy);
  }

  async clearPasswordChange(userId: string): Promise<void> {
    await this.counters.clearThrottle(`password:${userId}`);
  }

  /** A success resets only its own counter: the device's, or the username's for unknown devices (never the IP's). */
  async recordSuccess(usernameKey: string, device: Device | null): Promise<void> {
    await this.counters.clearThrottle(device ? `device:${device.deviceId}:${device.userId}` : `user:${usernameKey}`);
  }
}
