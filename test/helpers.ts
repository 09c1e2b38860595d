// Shared test fixtures: a Latch on a fresh temporary data directory, its HTTP app, and
// small request helpers around Fastify's inject.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { loadConfig, type Config } from '../src/config.ts';
import { openLatch, type Opened } from '../src/compose.ts';
import type { Clock } from '../src/core/clock.ts';
import { buildApp } from '../src/server/app.ts';
import { PrometheusMetrics } from '../src/server/metrics.ts';
import type { App } from '../src/server/app-types.ts';

export function tempDir(prefix = 'latch-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function testConfig(dataDir: string, overrides: Partial<Record<keyof Config, unknown>> = {}): Config {
  return loadConfig({ env: {}, overrides: { dataDir, logLevel: 'silent', pollInterval: 20, ...overrides } });
}

export interface Harness {
  app: App;
  opened: Opened;
  config: Config;
  dir: string;
  close: () => Promise<void>;
}

/** A started Latch and its app on a fresh data directory (or the one given, for restarts). */
export async function harness(overrides: Partial<Record<keyof Config, unknown>> = {}, options: { clock?: Clock; dir?: string } = {}): Promise<Harness> {
  const tmp = options.dir ? null : tempDir();
  const dir = options.dir ?? tmp!.dir;
  const config = testConfig(dir, overrides);
  const metrics = new PrometheusMetrics();
  const opened = await openLatch(config, { metrics, ...(options.clock ? { clock: options.clock } : {}) });
  const app = await buildApp(opened.latch, { logLevel: 'silent', metrics, busConnected: opened.busConnected, rateLimits: config.rateLimits, corsOrigins: config.corsOrigins, trustProxy: config.trustProxy });
  return {
    app,
    opened,
    config,
    dir,
    close: async () => {
      await app.close();
      await opened.close();
      tmp?.remove();
    },
  };
}

export type Res = LightMyRequestResponse;

export const json = (res: Res): Record<string, unknown> => JSON.parse(res.body) as Record<string, unknown>;

export async function post(app: App, url: string, body: unknown, headers: Record<string, string> = {}): Promise<Res> {
  return app.inject({ method: 'POST', url, payload: body as Record<string, unknown>, headers: { 'content-type': 'application/json', ...headers } });
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

export interface Tokens {
  access_token: string;
  refresh_token: string;
  session_id: string;
  expires_in: number;
  refresh_expires_in: number;
  token_type: string;
}

export async function registerAndLogin(app: App, username = 'alice', password = 'correct horse battery'): Promise<Tokens> {
  const created = await post(app, '/v1/users', { username, password });
  if (created.statusCode !== 201) throw new Error(`register failed: ${created.statusCode} ${created.body}`);
  return login(app, username, password);
}

export async function login(app: App, username = 'alice', password = 'correct horse battery', extra: Record<string, unknown> = {}): Promise<Tokens> {
  const res = await post(app, '/v1/login', { username, password, ...extra });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return json(res) as unknown as Tokens;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
