// examples/resource-server: the Fastify and the Express API, each started with its one
// documented command against a real Latch, accept a live token, refuse no token, and refuse a
// logged-out one within milliseconds. Both type-check against latch/verify's public types.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { bearer, registerAndLogin, login } from './helpers.ts';
import { addClient, eventually, liveLatch, type LiveLatch } from './fixtures/loopback.ts';

const ROOT = join(import.meta.dirname, '..');
const PASSWORD = 'correct horse battery';

/** `npx tsx examples/resource-server/<name>.ts`, as README.md says (tsx run directly, without npx's lookup). */
async function startExample(name: string, env: Record<string, string>): Promise<{ url: string; child: ChildProcess; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join('examples', 'resource-server', `${name}.ts`)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${stderr}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`${name} exited with ${code}: ${stderr}`)));
  });
  return { url, child, exited };
}

describe('examples/resource-server', () => {
  let live: LiveLatch;
  let env: Record<string, string>;
  before(async () => {
    live = await liveLatch();
    const client = await addClient(live.opened.latch, 'example-api');
    env = { LATCH_ISSUER: live.url, LATCH_CLIENT_ID: client.id, LATCH_CLIENT_SECRET: client.secret };
    await registerAndLogin(live.app, 'dora', PASSWORD);
  });
  after(async () => live.close());

  for (const name of ['fastify', 'express']) {
    it(`${name}: accepts a live token, refuses none and a logged-out one, and stops on SIGTERM`, async () => {
      const example = await startExample(name, env);
      try {
        const t = await login(live.app, 'dora', PASSWORD);
        const ok = await fetch(`${example.url}/api/hello`, { headers: bearer(t.access_token) });
        assert.equal(ok.status, 200);
        const me = (await live.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).json<{ id: string }>();
        assert.deepEqual(await ok.json(), { hello: me.id });
        assert.deepEqual(await (await fetch(`${example.url}/hello`)).json(), { hello: 'anonymous' });
        assert.equal((await fetch(`${example.url}/readyz`)).status, 200);

        const none = await fetch(`${example.url}/api/hello`);
        assert.equal(none.status, 401);
        assert.equal(none.headers.get('www-authenticate'), 'Bearer');

        assert.equal((await live.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(t.access_token) })).statusCode, 204);
        const loggedOutAt = Date.now();
        assert.ok(await eventually(async () => (await fetch(`${example.url}/api/hello`, { headers: bearer(t.access_token) })).status === 401, 1_000, 2));
        assert.ok(Date.now() - loggedOutAt < 1_000);
      } finally {
        example.child.kill('SIGTERM');
        assert.equal(await example.exited, 0);
      }
    });
  }

  it('type-check against latch/verify (tsc -p examples/resource-server)', () => {
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join('examples', 'resource-server', 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });
});
