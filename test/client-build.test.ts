// latch/client as a package: its minified+gzipped size, that it pulls in nothing from the
// server or Node, that the subpath export resolves, that the UI type-checks against the DOM
// alone, and how the UI is served. The SDK's types are checked at the bottom (by tsc).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { createClient, LatchClientError, type AuthState, type LatchClient, type LogoutResult, type Session } from '../src/client/index.ts';
import { harness, type Harness } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..');
// the budget the SDK has to stay under, minified and gzipped
const SIZE_BUDGET_BYTES = 4 * 1024;

describe('latch/client bundle', () => {
  it(`is small: minified + gzipped under ${SIZE_BUDGET_BYTES} bytes`, async (t) => {
    const result = await build({
      entryPoints: [join(ROOT, 'src/client/index.ts')],
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: ['es2020'],
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.contents;
    const gzipped = gzipSync(code, { level: 9 }).length;
    const line = `latch/client: ${code.length} bytes minified, ${gzipped} bytes minified+gzipped`;
    t.diagnostic(line);
    console.log(line);
    assert.ok(gzipped < SIZE_BUDGET_BYTES, line);
    // nothing from the server, the core or Node gets bundled into the browser SDK
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.length > 0);
    for (const input of inputs) assert.match(input, /^src\/client\//, input);
    assert.doesNotMatch(new TextDecoder().decode(code), /from\s*["']node:|require\(/);
  });

  it('is the package subpath export latch/client', async () => {
    const sdk = (await import('latch/client')) as { createClient?: unknown; LatchClientError?: unknown };
    assert.equal(sdk.createClient, createClient);
    assert.equal(sdk.LatchClientError, LatchClientError);
  });

  it('the web UI and the SDK type-check against the DOM alone (no Node types)', () => {
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'web/tsconfig.json')], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  });
});

describe('GET / : the web UI', () => {
  let h: Harness;
  before(async () => {
    h = await harness();
  });
  after(async () => h.close());

  it('is HTML with a strict CSP, framing refused, no referrer, no sniffing', async () => {
    const res = await h.app.inject({ url: '/' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    const csp = String(res.headers['content-security-policy']);
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]) {
      assert.ok(csp.includes(directive), directive);
    }
    assert.doesNotMatch(csp, /unsafe-|\*/);
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.doesNotMatch(res.body, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i, 'no inline script, style or handler');
    assert.equal((await h.app.inject({ method: 'HEAD', url: '/' })).statusCode, 200);
  });

  it('serves its script and style at hashed, immutable URLs whose integrity the page pins', async () => {
    const html = (await h.app.inject({ url: '/' })).body;
    const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)" integrity="(sha384-[^"]+)"/g)];
    assert.equal(refs.length, 2, html);
    for (const [, path, integrity] of refs) {
      const res = await h.app.inject({ url: path! });
      assert.equal(res.statusCode, 200, path);
      assert.match(String(res.headers['content-type']), path!.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(`sha384-${createHash('sha384').update(res.rawPayload).digest('base64')}`, integrity);
    }
    assert.equal((await h.app.inject({ url: '/favicon.svg' })).statusCode, 200);
    const missing = await h.app.inject({ url: '/assets/main.0000.js' });
    assert.equal(missing.statusCode, 404);
    assert.match(String(missing.headers['content-type']), /^application\/problem\+json/);
  });

  it('is not in the OpenAPI document', async () => {
    const doc = JSON.parse((await h.app.inject({ url: '/openapi.json' })).body) as { paths: Record<string, unknown> };
    assert.equal(doc.paths['/'], undefined);
    assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/assets')));
  });
});

// ---- type-level checks of the public API: compiled by `tsc`, never run ----------------------

export function typeChecks(client: LatchClient): void {
  const state: AuthState = client.state;
  // @ts-expect-error the state is read-only
  state.status = 'logged_in';
  const sessions: Promise<Session[]> = client.sessions();
  const out: Promise<LogoutResult> = client.logout({ scope: 'all' });
  // @ts-expect-error only the three documented scopes exist
  void client.logout({ scope: 'everything' });
  // @ts-expect-error the SDK never hands out the access token
  void client.accessToken;
  // @ts-expect-error baseUrl is required
  createClient({});
  const unsubscribe: () => void = client.onChange((s) => void s.reason);
  void [sessions, out, unsubscribe];
}
