// The arrows of DESIGN.md's parts, checked on the import statements: server, verify and cli
// depend on core; core never on an adapter or the server; verify and client never on the
// server, a store or the CLI; client (it runs in browsers) on nothing outside itself.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = join(import.meta.dirname, '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Project-relative targets of a file's relative imports (type-only ones included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)].map((m) => relative(SRC, resolve(dirname(file), m[1]!)));
}

const RULES: { part: string; forbidden: RegExp; why: string }[] = [
  { part: 'core', forbidden: /^(server|cli|verify|client|compose|store\/(sqlite|postgres|redis)|bus\/(memory|redis))/, why: 'core depends on ports only' },
  { part: 'verify', forbidden: /^(server|store|bus|cli|compose|client|config)/, why: 'latch/verify runs beside another API, with no database' },
  { part: 'client', forbidden: /^(?!client\/)/, why: 'latch/client runs in browsers' },
  { part: 'store', forbidden: /^(server|cli|verify|client|compose)/, why: 'adapters sit below core' },
  { part: 'bus', forbidden: /^(server|cli|verify|client|compose|store\/(sqlite|postgres))/, why: 'adapters sit below core' },
];

describe('module boundaries', () => {
  for (const rule of RULES) {
    it(`${rule.part}/ imports nothing it must not (${rule.why})`, () => {
      const offending = files(join(SRC, rule.part)).flatMap((f) => importsOf(f).filter((t) => rule.forbidden.test(t)).map((t) => `${relative(SRC, f)} → ${t}`));
      assert.deepEqual(offending, []);
    });
  }

  it('the checker sees imports at all (it could otherwise pass on nothing)', () => {
    assert.ok(importsOf(join(SRC, 'core', 'latch.ts')).includes('store/port.ts'));
    assert.ok(importsOf(join(SRC, 'verify', 'verifier.ts')).includes('core/revocation-set.ts'));
  });
});
