// GET /metrics in the Prometheus text format (prom-client): what an operator alerts on.
// The core reports through the LatchMetrics interface; gauges are read at scrape time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { Latch } from '../core/latch.ts';
import type { LatchMetrics, LoginOutcome, RefreshOutcome } from '../core/metrics.ts';
import type { RevocationRow } from '../store/port.ts';

export class PrometheusMetrics implements LatchMetrics {
  readonly registry = new Registry();
  private readonly logins = new Counter({ name: 'latch_logins_total', help: 'Login attempts by outcome', labelNames: ['outcome'], registers: [this.registry] });
  private readonly refreshes = new Counter({ name: 'latch_refreshes_total', help: 'Refresh attempts by outcome (reused: a rotated refresh token was presented again)', labelNames: ['outcome'], registers: [this.registry] });
  private readonly written = new Counter({ name: 'latch_revocations_written_total', help: 'Revocation log rows committed by this process', registers: [this.registry] });
  private readonly applied = new Counter({ name: 'latch_revocations_applied_total', help: 'Revocation log rows read from the store and applied to memory', labelNames: ['kind'], registers: [this.registry] });
  private readonly lag = new Histogram({
    name: 'latch_revocation_lag_seconds',
    help: 'Time from a revocation commit (on any node) to its apply on this node, from the store',
    buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });
  private readonly errors = new Counter({ name: 'latch_background_errors_total', help: 'Errors of background work (store polls, bus)', labelNames: ['source'], registers: [this.registry] });
  readonly requestDuration = new Histogram({
    name: 'latch_http_request_duration_seconds',
    help: 'HTTP request latency by route and status class',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'latch_process_' });
    for (const outcome of ['success', 'failure', 'throttled', 'locked']) this.logins.inc({ outcome }, 0);
    for (const outcome of ['success', 'invalid', 'reused']) this.refreshes.inc({ outcome }, 0);
    for (const source of ['store', 'bus', 'other']) this.errors.inc({ source }, 0);
  }

  login(outcome: LoginOutcome): void {
    this.logins.inc({ outcome });
  }
  refresh(outcome: RefreshOutcome): void {
    this.refreshes.inc({ outcome });
  }
  revocationsWritten(count: number): void {
    this.written.inc(count);
  }
  revocationsApplied(rows: readonly RevocationRow[], nowMs: number): void {
    for (const row of rows) {
      this.applied.inc({ kind: row.kind });
      this.lag.observe(Math.max(0, nowMs - row.createdAt) / 1000);
    }
  }
  backgroundError(source: 'store' | 'bus' | 'other'): void {
    this.errors.inc({ source });
  }

  /** Gauges read from the running node at scrape time. */
  observe(latch: Latch, busConnected: () => boolean | null): void {
    const registers = [this.registry];
    new Gauge({
      name: 'latch_revocation_staleness_seconds',
      help: 'Seconds since this node last confirmed the revocation log head (fails closed past LATCH_STALENESS_BUDGET)',
      registers,
      collect() {
        this.set(Math.max(0, (latch.clock.now() - latch.revocations.lastConfirmedAt) / 1000));
      },
    });
    new Gauge({ name: 'latch_revocation_fresh', help: '1 while the revocation state is fresh, 0 while tokens are refused', registers, collect() { this.set(latch.revocations.isFresh() ? 1 : 0); } });
    new Gauge({ name: 'latch_revocation_entries', help: 'Live revocation entries held in memory', registers, collect() { this.set(latch.revocations.state.size); } });
    new Gauge({ name: 'latch_revocation_seq', help: 'Highest revocation seq applied', registers, collect() { this.set(latch.revocations.position.seq); } });
    new Gauge({ name: 'latch_password_hash_queue_depth', help: 'Password hashes running or waiting', registers, collect() { this.set(latch.passwords.depth); } });
    if (busConnected() === null) return; // no Redis configured: nothing to report
    new Gauge({
      name: 'latch_bus_connected',
      help: '1 while the Redis bus is connected (absent without Redis); Redis down alone is not staleness',
      registers,
      collect() {
        this.set(busConnected() ? 1 : 0);
      },
    });
  }
}

export function metricsRoute(app: FastifyInstance, metrics: PrometheusMetrics): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requestDuration.observe({ method: request.method, route, status: `${Math.floor(reply.statusCode / 100)}xx` }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { config: { hidden: true } as never }, async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
