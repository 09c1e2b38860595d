// Every error code is registered once with its status, documented in docs/errors.md, and
// listed by the OpenAPI document for the routes that can answer it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERRORS } from '../src/core/errors.ts';
import { harness, json, type Harness } from './helpers.ts';

describe('error registry', () => {
  it('every code is snake_case, has a 4xx/5xx status and a title, and is documented in docs/errors.md', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'errors.md'), 'utf8');
    for (const [code, { status, title }] of Object.entries(ERRORS)) {
      assert.match(code, /^[a-z]+(_[a-z]+)*$/);
      assert.ok(status >= 400 && status < 600, code);
      assert.ok(title.length > 5, code);
      assert.match(doc, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `${code} (${status}) missing from docs/errors.md`);
    }
  });
});

describe('GET /openapi.json', () => {
  let h: Harness;
  before(async () => {
    h = await harness();
  });
  after(async () => h.close());

  it('is OpenAPI 3.1 with every route and its error codes', async () => {
    const res = await h.app.inject({ url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = json(res) as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { 'x-error-codes'?: string[] }> }>> };
    assert.equal(doc.openapi, '3.1.0');
    for (const [path, method] of [
      ['/v1/users', 'post'],
      ['/v1/login', 'post'],
      ['/v1/refresh', 'post'],
      ['/v1/logout', 'post'],
      ['/v1/me', 'get'],
      ['/v1/sessions', 'get'],
      ['/v1/sessions/{id}', 'delete'],
      ['/.well-known/jwks.json', 'get'],
      ['/healthz', 'get'],
      ['/readyz', 'get'],
    ] as const) {
      assert.ok(doc.paths[path]?.[method], `${method} ${path}`);
    }
    const login = doc.paths['/v1/login']!.post!.responses;
    assert.deepEqual(login['401']?.['x-error-codes'], ['invalid_credentials']);
    assert.deepEqual(login['503']?.['x-error-codes'], ['overloaded', 'store_unavailable']);
    assert.ok(login['400']?.['x-error-codes']?.includes('invalid_request'));
    const me = doc.paths['/v1/me']!.get!.responses;
    assert.deepEqual(me['401']?.['x-error-codes'], ['invalid_token']);
    assert.ok(me['503']?.['x-error-codes']?.includes('revocation_state_stale'));
    const all = new Set(Object.values(doc.paths).flatMap((m) => Object.values(m).flatMap((op) => Object.values(op.responses).flatMap((r) => r['x-error-codes'] ?? []))));
    for (const code of all) assert.ok(code in ERRORS, code);
  });
});
