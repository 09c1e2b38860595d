// The data directory (mode 0700) and the master key: LATCH_MASTER_KEY, or <data>/master.key
// created on first start with mode 0600.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError } from './core/errors.ts';

export function ensureDataDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  else if (!statSync(dir).isDirectory()) throw new ConfigError(`LATCH_DATA_DIR: ${dir} is not a directory`);
}

export function loadMasterKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) return Buffer.from(configured, 'base64url');
  const path = join(dataDir, 'master.key');
  if (!existsSync(path)) {
    ensureDataDir(dataDir);
    try {
      writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process created it first
    }
    chmodSync(path, 0o600);
  }
  const text = readFileSync(path, 'utf8').trim();
  const key = Buffer.from(text, 'base64url');
  if (!/^[A-Za-z0-9_-]{43}$/.test(text) || key.length !== 32) throw new ConfigError(`${path}: must hold 32 bytes encoded as base64url`);
  return key;
}
