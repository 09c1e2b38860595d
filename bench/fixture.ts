// A real Latch for benchmarks: openLatch (SQLite store, in-process bus, default settings) on a
// fresh temporary data directory, removed on close.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLatch } from '../src/compose.ts';
import { loadConfig } from '../src/config.ts';
import type { Latch } from '../src/core/latch.ts';

export interface BenchLatch {
  latch: Latch;
  close(): Promise<void>;
}

export async function openBenchLatch(): Promise<BenchLatch> {
  const dir = mkdtempSync(join(tmpdir(), 'latch-bench-'));
  try {
    // env {}: the caller's LATCH_* variables must not change what is measured
    const opened = await openLatch(loadConfig({ env: {}, overrides: { dataDir: dir, logLevel: 'silent' } }));
    return {
      latch: opened.latch,
      close: async () => {
        try {
          await opened.close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
