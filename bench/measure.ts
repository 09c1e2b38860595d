// Measuring helpers: interleaved throughput slices, summary statistics and number formatting.
// Nothing here judges a figure; suites print figures and ratios next to their goals.
import { PerformanceObserver } from 'node:perf_hooks';

/** One thing being timed: a step over the i-th input of a shared pool, synchronous or awaited. */
export type Contender = { name: string; step: (i: number) => void } | { name: string; stepAsync: (i: number) => Promise<void> };

/** Steps between clock reads: small next to a slice, large next to the cost of reading the clock. */
const BATCH = 32;

export interface Throughput {
  ops: number;
  ns: number;
}

export const opsPerSecond = (t: Throughput): number => (t.ops * 1e9) / t.ns;

/** Runs `step` over the pool (size a power of two) for about `ms`; returns the operations and the time they took. */
export function runSlice(step: (i: number) => void, poolMask: number, startAt: number, ms: number): Throughput {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(ms * 1e6));
  let i = startAt;
  let ops = 0;
  let now = start;
  do {
    for (let k = 0; k < BATCH; k++) {
      step(i & poolMask);
      i += 1;
    }
    ops += BATCH;
    now = process.hrtime.bigint();
  } while (now < deadline);
  return { ops, ns: Number(now - start) };
}

/** runSlice for a step that must be awaited (one at a time, as a sequential caller would). */
export async function runSliceAsync(step: (i: number) => Promise<void>, poolMask: number, startAt: number, ms: number): Promise<Throughput> {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(ms * 1e6));
  let i = startAt;
  let ops = 0;
  let now = start;
  do {
    for (let k = 0; k < BATCH; k++) {
      await step(i & poolMask);
      i += 1;
    }
    ops += BATCH;
    now = process.hrtime.bigint();
  } while (now < deadline);
  return { ops, ns: Number(now - start) };
}

export interface InterleaveOptions {
  /** ms per slice of one contender */
  sliceMs: number;
  /** slices per contender */
  slices: number;
  poolSize: number;
  /** runs between cycles of slices, outside the timed region (lets timers and the revocation poll run) */
  between?: () => Promise<void>;
  /** rotates the order of contenders inside each cycle, so no one always goes first */
  rotation?: number;
}

export interface ContenderResult {
  opsPerSecond: number;
  /** main-thread GC pause time that fell inside this contender's slices, per operation */
  gcNsPerOp: number;
}

interface Window {
  name: string;
  start: number;
  end: number;
}

/** GC pauses (performance timeline) that start inside each window, summed per contender name. */
async function collectGcPauses<T>(run: (windows: Window[]) => Promise<T>): Promise<{ result: T; pauseMs: Map<string, number> }> {
  const pauses: { start: number; duration: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push({ start: entry.startTime, duration: entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const windows: Window[] = [];
  let result: T;
  try {
    result = await run(windows);
    // entries are delivered on a later turn of the event loop
    await new Promise((resolve) => setTimeout(resolve, 0));
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    observer.disconnect();
  }
  const pauseMs = new Map<string, number>();
  for (const p of pauses) {
    const w = windows.find((x) => p.start >= x.start && p.start < x.end);
    if (w) pauseMs.set(w.name, (pauseMs.get(w.name) ?? 0) + p.duration);
  }
  return { result, pauseMs };
}

/**
 * Gives every contender `slices` slices of `sliceMs`, alternating A B C, A B C, … so drift in
 * the machine (frequency, neighbours) lands on all of them alike.
 */
export async function interleave(contenders: Contender[], options: InterleaveOptions): Promise<Map<string, ContenderResult>> {
  if ((options.poolSize & (options.poolSize - 1)) !== 0) throw new TypeError('poolSize must be a power of two');
  const mask = options.poolSize - 1;
  const n = contenders.length;
  const { result: totals, pauseMs } = await collectGcPauses(async (windows) => {
    const sums = new Map<string, Throughput>(contenders.map((c) => [c.name, { ops: 0, ns: 0 }]));
    for (let s = 0; s < options.slices; s++) {
      await options.between?.();
      for (let j = 0; j < n; j++) {
        const c = contenders[(j + s + (options.rotation ?? 0)) % n]!;
        const start = performance.now();
        // every contender starts each slice at the same place in the pool
        const t = 'step' in c ? runSlice(c.step, mask, s * 977, options.sliceMs) : await runSliceAsync(c.stepAsync, mask, s * 977, options.sliceMs);
        windows.push({ name: c.name, start, end: performance.now() });
        const sum = sums.get(c.name)!;
        sum.ops += t.ops;
        sum.ns += t.ns;
      }
    }
    return sums;
  });
  return new Map(
    [...totals].map(([name, t]) => [name, { opsPerSecond: opsPerSecond(t), gcNsPerOp: ((pauseMs.get(name) ?? 0) * 1e6) / t.ops }]),
  );
}

export const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc (npm run bench does)');
  collect();
};

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

/** Nearest-rank percentile, p in (0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmtOps = (n: number): string => `${fmtInt(n)}/s`;
export const fmtRatio = (n: number): string => n.toFixed(3);
export const fmtMs = (n: number): string => `${n.toFixed(2)} ms`;
export const fmtUs = (n: number): string => `${n.toFixed(2)} µs`;
export const fmtPct = (n: number): string => `${n >= 0 ? '+' : '−'}${Math.abs(n * 100).toFixed(1)}%`;
export const fmtRange = (values: readonly number[], fmt: (n: number) => string): string =>
  `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`;
