// The composition root: the one place that picks adapters from the configuration and wires
// them into the core. PostgreSQL and Redis drivers load only when configured.
import { join } from 'node:path';
import type { Bus } from './bus/port.ts';
import { MemoryBus } from './bus/memory.ts';
import type { Config } from './config.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { Latch, type LatchSettings } from './core/latch.ts';
import { Sealer } from './core/seal.ts';
import type { Store } from './store/port.ts';
import type { ThrottleCounters } from './core/throttle.ts';
import type { LatchMetrics } from './core/metrics.ts';
import { SqliteStore } from './store/sqlite/index.ts';
import { ensureDataDir, loadMasterKey } from './data-dir.ts';

export interface OpenOptions {
  clock?: Clock;
  /** start polling, pruning and the dummy hash (a server); false for one-shot CLI commands */
  serve?: boolean;
  onError?: (err: unknown) => void;
  metrics?: LatchMetrics;
}

export function settingsFrom(config: Config): LatchSettings {
  return {
    issuer: config.issuer,
    audience: config.audience,
    accessTtl: config.accessTtl,
    refreshTtl: config.refreshTtl,
    sessionIdle: config.sessionIdle,
    refreshReuseGrace: config.refreshReuseGrace,
    signingAlg: config.signingAlg,
    signup: config.signup,
    stalenessBudget: config.stalenessBudget,
    pollInterval: config.pollInterval,
    hashConcurrency: config.hashConcurrency,
    hashQueue: config.hashQueue,
    auditRetention: config.auditRetention,
    lockDuration: config.lockDuration,
    keyRotation: config.keyRotation,
    throttle: {
      deviceFailures: config.throttleDeviceFailures,
      userFailures: config.throttleUserFailures,
      ipFailures: config.throttleIpFailures,
      maxDelay: config.throttleMaxDelay,
    },
  };
}

async function openStore(config: Config): Promise<Store> {
  if (config.databaseUrl) {
    // loaded here, not at the top: a SQLite-only install never loads the pg driver
    const { PostgresStore } = await import('./store/postgres/index.ts');
    return new PostgresStore({ connectionString: config.databaseUrl });
  }
  ensureDataDir(config.dataDir);
  return new SqliteStore({ path: join(config.dataDir, 'latch.db') });
}

async function openBus(config: Config, onError: ((err: unknown) => void) | undefined): Promise<Bus> {
  if (config.redisUrl === undefined) return new MemoryBus();
  // Loaded only when configured, so the embedded default never pulls in ioredis.
  const { RedisBus } = await import('./bus/redis/index.ts');
  return RedisBus.open({ url: config.redisUrl, channel: `${config.redisPrefix}revocations`, ...(onError ? { onError } : {}) });
}

/** With Redis configured, failed-login counters live there (shared by every node), backed by the store. */
async function openThrottleCounters(config: Config, store: Store, onError: ((err: unknown) => void) | undefined): Promise<(ThrottleCounters & { close(): Promise<void> }) | null> {
  if (config.redisUrl === undefined) return null;
  const { RedisThrottleCounters } = await import('./store/redis/throttle.ts');
  return new RedisThrottleCounters(config.redisUrl, config.redisPrefix, store, onError);
}

export interface Opened {
  latch: Latch;
  /** null without Redis (the in-process bus is always there) */
  busConnected(): boolean | null;
  close(): Promise<void>;
}

/** Opens the store and bus, applies migrations, loads keys and (when serving) the revocation log. */
export async function openLatch(config: Config, options: OpenOptions = {}): Promise<Opened> {
  const clock = options.clock ?? systemClock;
  const masterKey = loadMasterKey(config.masterKey, config.dataDir);
  const store = await openStore(config);
  const onBusError = (err: unknown): void => {
    options.metrics?.backgroundError('bus');
    options.onError?.(err);
  };
  const bus = await openBus(config, onBusError);
  const counters = await openThrottleCounters(config, store, onBusError);
  const close = async (): Promise<void> => {
    await latch.stop();
    await bus.close();
    await counters?.close();
    await store.close();
  };
  const latch = new Latch({
    store,
    bus,
    clock,
    masterKey,
    sealer: new Sealer(masterKey),
    settings: settingsFrom(config),
    ...(counters ? { throttleCounters: counters } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.onError ? { onError: options.onError } : {}),
  });
  try {
    await store.migrate();
    if (options.serve === false) await latch.keyRing.ensureActiveKey();
    else await latch.start();
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  return { latch, close, busConnected: () => ('connected' in bus ? Boolean((bus as { connected: unknown }).connected) : null) };
}
