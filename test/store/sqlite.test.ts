// The store conformance suite against SqliteStore, on a fresh database file per test (a file,
// not ':memory:', so WAL and the on-disk schema are what is tested).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/index.ts';
import { storeConformance } from './conformance.ts';

storeConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'latch-store-'));
  const store = new SqliteStore({ path: join(dir, 'latch.db') });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
