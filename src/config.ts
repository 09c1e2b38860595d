// Every setting of Latch: read from LATCH_* environment variables and an optional
// `--config FILE` (JSON, camelCase keys), validated once at boot, then frozen.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from './core/errors.ts';
import type { SigningAlg } from './core/keyring.ts';


export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly redisUrl: string | undefined;
  /** prefix of every Redis key and channel, so several deployments (or test runs) can share one Redis */
  readonly redisPrefix: string;
  readonly issuer: string;
  readonly audience: string;
  /** seconds */
  readonly accessTtl: number;
  /** seconds: absolute session lifetime */
  readonly refreshTtl: number;
  /** seconds: a session unused for longer ends */
  readonly sessionIdle: number;
  /** seconds */
  readonly refreshReuseGrace: number;
  readonly signingAlg: SigningAlg;
  /** 32 bytes, base64url; undefined: read or create <dataDir>/master.key */
  readonly masterKey: string | undefined;
  readonly signup: 'open' | 'closed';
  readonly trustProxy: string | undefined;
  /** seconds */
  readonly keyRotation: number;
  /** seconds */
  readonly stalenessBudget: number;
  /** milliseconds */
  readonly pollInterval: number;
  readonly corsOrigins: readonly string[];
  readonly rateLimits: boolean;
  /** password hashes running at once */
  readonly hashConcurrency: number;
  /** password hashes allowed to wait; past it, 503 overloaded */
  readonly hashQueue: number;
  /** seconds an audit event is kept */
  readonly auditRetention: number;
  /** seconds a lock lasts when no end is given */
  readonly lockDuration: number;
  /** failures per hour a known device may make for its account */
  readonly throttleDeviceFailures: number;
  /** failures in a row from unknown devices before a username is throttled */
  readonly throttleUserFailures: number;
  /** failures from one IP (IPv6: one /64) within 15 min before it is throttled */
  readonly throttleIpFailures: number;
  /** seconds: the longest Retry-After a throttle answers */
  readonly throttleMaxDelay: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

type Parser<T> = (raw: unknown, name: string) => T;

interface Setting<T> {
  env: string;
  parse: Parser<T>;
  default: T | ((c: Partial<Config>) => T);
}

function fail(name: string, message: string): never {
  throw new ConfigError(`${name}: ${message}`);
}

const str =
  (opts: { pattern?: RegExp; hint?: string } = {}): Parser<string> =>
  (raw, name) => {
    if (typeof raw !== 'string' || raw.length === 0) fail(name, 'must be a non-empty string');
    if (opts.pattern && !opts.pattern.test(raw)) fail(name, `invalid value ${JSON.stringify(raw)}${opts.hint ? ` (${opts.hint})` : ''}`);
    return raw;
  };

const optionalStr =
  (opts: { pattern?: RegExp; hint?: string } = {}): Parser<string | undefined> =>
  (raw, name) => (raw === undefined || raw === '' ? undefined : str(opts)(raw, name));

const int =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) fail(name, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    return n;
  };

const oneOf =
  <T extends string>(...values: T[]): Parser<T> =>
  (raw, name) => {
    if (typeof raw !== 'string' || !(values as string[]).includes(raw)) fail(name, `must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    return raw as T;
  };

const bool: Parser<boolean> = (raw, name) => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'on' || raw === 'true' || raw === '1') return true;
  if (raw === 'off' || raw === 'false' || raw === '0') return false;
  return fail(name, `must be on or off, got ${JSON.stringify(raw)}`);
};

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** "30d", "12h", "90m", "45s" or a bare number of seconds. */
export function parseDuration(raw: unknown, name: string): number {
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw > 0) return raw;
  const m = typeof raw === 'string' ? /^(\d+)\s*([smhd]?)$/.exec(raw.trim()) : null;
  if (!m) return fail(name, `must be a duration like 30d, 12h, 90m or 45s, got ${JSON.stringify(raw)}`);
  const seconds = Number(m[1]) * UNITS[m[2] || 's']!;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) return fail(name, 'must be a positive duration');
  return seconds;
}

/** A duration no longer than `max` seconds. */
function boundedDuration(raw: unknown, name: string, max: number): number {
  const seconds = parseDuration(raw, name);
  if (seconds > max) fail(name, `must be at most ${max / 86400} days`);
  return seconds;
}

const url =
  (...protocols: string[]): Parser<string | undefined> =>
  (raw, name) => {
    if (raw === undefined || raw === '') return undefined;
    if (typeof raw !== 'string') return fail(name, 'must be a URL');
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return fail(name, 'must be a URL');
    }
    if (!protocols.includes(u.protocol)) fail(name, `must start with ${protocols.join(' or ')}`);
    return raw;
  };

const issuerUrl: Parser<string> = (raw, name) => {
  const value = url('http:', 'https:')(raw, name);
  if (value === undefined) return fail(name, 'must be an http(s) URL');
  const u = new URL(value);
  if (u.search || u.hash) fail(name, 'must not have a query or fragment (RFC 8414)');
  return value.replace(/\/+$/, '');
};

const origins: Parser<readonly string[]> = (raw, name) => {
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : fail(name, 'must be a comma-separated list of origins');
  return list.map((o: unknown) => {
    if (typeof o !== 'string') return fail(name, 'must be a list of origins');
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      return fail(name, `${JSON.stringify(o)} is not an origin like https://app.example.com`);
    }
    if (u.origin !== o.replace(/\/$/, '')) fail(name, `${JSON.stringify(o)} is not an origin like https://app.example.com`);
    return u.origin;
  });
};

const masterKey: Parser<string | undefined> = (raw, name) => {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || !/^[A-Za-z0-9_-]{43}=?$/.test(raw) || Buffer.from(raw, 'base64url').length !== 32)
    return fail(name, 'must be 32 random bytes encoded as base64url (43 characters); generate one with: node -e "console.log(require(\'crypto\').randomBytes(32).toString(\'base64url\'))"');
  return raw;
};

const SETTINGS: { [K in keyof Config]: Setting<Config[K]> } = {
  host: { env: 'LATCH_HOST', parse: str(), default: '127.0.0.1' },
  port: { env: 'LATCH_PORT', parse: int(0, 65535), default: 8080 },
  dataDir: { env: 'LATCH_DATA_DIR', parse: str(), default: './data' },
  databaseUrl: { env: 'LATCH_DATABASE_URL', parse: url('postgres:', 'postgresql:'), default: undefined },
  redisUrl: { env: 'LATCH_REDIS_URL', parse: url('redis:', 'rediss:'), default: undefined },
  redisPrefix: { env: 'LATCH_REDIS_PREFIX', parse: str({ pattern: /^[A-Za-z0-9:_.-]{1,64}$/, hint: 'letters, digits and :_.- only' }), default: 'latch:' },
  issuer: {
    env: 'LATCH_ISSUER',
    parse: issuerUrl,
    default: (c) => `http://${c.host?.includes(':') ? `[${c.host}]` : c.host}:${c.port}`,
  },
  audience: { env: 'LATCH_AUDIENCE', parse: str(), default: 'latch' },
  accessTtl: { env: 'LATCH_ACCESS_TTL', parse: int(1, 86400), default: 300 },
  refreshTtl: { env: 'LATCH_REFRESH_TTL', parse: int(60, 31_536_000), default: 2_592_000 },
  sessionIdle: { env: 'LATCH_SESSION_IDLE', parse: int(60, 31_536_000), default: 604_800 },
  refreshReuseGrace: { env: 'LATCH_REFRESH_REUSE_GRACE', parse: int(0, 300), default: 10 },
  signingAlg: { env: 'LATCH_SIGNING_ALG', parse: oneOf<SigningAlg>('ES256', 'EdDSA', 'RS256'), default: 'ES256' },
  masterKey: { env: 'LATCH_MASTER_KEY', parse: masterKey, default: undefined },
  signup: { env: 'LATCH_SIGNUP', parse: oneOf('open', 'closed'), default: 'open' },
  trustProxy: { env: 'LATCH_TRUST_PROXY', parse: optionalStr(), default: undefined },
  keyRotation: { env: 'LATCH_KEY_ROTATION', parse: parseDuration, default: 30 * 86400 },
  stalenessBudget: { env: 'LATCH_STALENESS_BUDGET', parse: int(1, 3600), default: 5 },
  pollInterval: { env: 'LATCH_POLL_INTERVAL', parse: int(10, 60_000), default: 100 },
  corsOrigins: { env: 'LATCH_CORS_ORIGINS', parse: origins, default: [] },
  rateLimits: { env: 'LATCH_RATE_LIMITS', parse: bool, default: true },
  hashConcurrency: { env: 'LATCH_HASH_CONCURRENCY', parse: int(1, 64), default: 4 },
  hashQueue: { env: 'LATCH_HASH_QUEUE', parse: int(0, 10_000), default: 64 },
  auditRetention: { env: 'LATCH_AUDIT_RETENTION', parse: parseDuration, default: 90 * 86400 },
  lockDuration: { env: 'LATCH_LOCK_DURATION', parse: (raw, name) => boundedDuration(raw, name, 366 * 86400), default: 86400 },
  throttleDeviceFailures: { env: 'LATCH_THROTTLE_DEVICE_FAILURES', parse: int(1, 10_000), default: 10 },
  throttleUserFailures: { env: 'LATCH_THROTTLE_USER_FAILURES', parse: int(1, 10_000), default: 5 },
  throttleIpFailures: { env: 'LATCH_THROTTLE_IP_FAILURES', parse: int(1, 1_000_000), default: 100 },
  throttleMaxDelay: { env: 'LATCH_THROTTLE_MAX_DELAY', parse: int(1, 86400), default: 900 },
  logLevel: { env: 'LATCH_LOG_LEVEL', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), default: 'info' },
};

const KEYS = Object.keys(SETTINGS) as (keyof Config)[];
const ENV_NAMES = new Set(KEYS.map((k) => SETTINGS[k].env));
/** Variables Latch's tests and tools read; not settings, but not typos either. */
const KNOWN_OTHER_ENV = new Set(['LATCH_TEST_POSTGRES_URL', 'LATCH_TEST_REDIS_URL', 'LATCH_CONFIG']);

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** path of a JSON config file */
  file?: string | undefined;
  /** highest precedence; used by tests and embedders */
  overrides?: Partial<{ [K in keyof Config]: unknown }>;
  /** called with a warning for each unknown LATCH_* environment variable */
  warn?: (message: string) => void;
}

/** Reads, validates and freezes the configuration. Throws ConfigError naming the bad key. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const fromFile: Record<string, unknown> = options.file ? readConfigFile(options.file) : {};
  for (const key of Object.keys(fromFile)) {
    if (!(KEYS as string[]).includes(key)) throw new ConfigError(`${options.file}: unknown key "${key}" (known keys: ${KEYS.join(', ')})`);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('LATCH_') && !ENV_NAMES.has(name) && !KNOWN_OTHER_ENV.has(name)) {
      options.warn?.(`unknown environment variable ${name} is ignored (a typo?)`);
    }
  }
  const config: Partial<Record<keyof Config, unknown>> = {};
  for (const key of KEYS) {
    const setting = SETTINGS[key] as Setting<unknown>;
    const override = options.overrides?.[key];
    let raw: unknown;
    let name: string;
    if (override !== undefined) {
      [raw, name] = [override, key];
    } else if (env[setting.env] !== undefined && env[setting.env] !== '') {
      [raw, name] = [env[setting.env], setting.env];
    } else if (fromFile[key] !== undefined) {
      [raw, name] = [fromFile[key], `${options.file}: ${key}`];
    } else {
      config[key] = typeof setting.default === 'function' ? (setting.default as (c: Partial<Config>) => unknown)(config as Partial<Config>) : setting.default;
      continue;
    }
    config[key] = Array.isArray(raw) || typeof raw !== 'object' ? setting.parse(raw, name) : fail(name, 'must not be an object');
  }
  const c = config as unknown as Config & { dataDir: string };
  c.dataDir = resolve(c.dataDir);
  crossCheck(c, env, fromFile, options.overrides);
  return Object.freeze(c);
}

function crossCheck(c: Config, env: NodeJS.ProcessEnv, fromFile: Record<string, unknown>, overrides: LoadOptions['overrides']): void {
  const issuerGiven = Boolean(env.LATCH_ISSUER) || fromFile.issuer !== undefined || overrides?.issuer !== undefined;
  if (c.databaseUrl && !issuerGiven) {
    throw new ConfigError('LATCH_ISSUER: required when LATCH_DATABASE_URL is set, so that every node signs tokens with the same issuer');
  }
  if (c.pollInterval * 2 > c.stalenessBudget * 1000) {
    throw new ConfigError(
      `LATCH_POLL_INTERVAL: ${c.pollInterval} ms must be at most half of LATCH_STALENESS_BUDGET (${c.stalenessBudget} s), or every node goes stale between two polls`,
    );
  }
  if (c.sessionIdle > c.refreshTtl) {
    throw new ConfigError(`LATCH_SESSION_IDLE: ${c.sessionIdle} is longer than LATCH_REFRESH_TTL (${c.refreshTtl})`);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(`--config ${path}: not valid JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`--config ${path}: must hold a JSON object`);
  return parsed as Record<string, unknown>;
}
