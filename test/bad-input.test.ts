// Bad input on every endpoint: a clear 4xx problem+json with a stable code, never a 500,
// never a stack trace, a library error name or the input echoed back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bearer, harness, json, registerAndLogin, type Harness, type Res, type Tokens } from './helpers.ts';

const LEAKS = /at .*\.(ts|js):\d+|FST_ERR|SyntaxError|TypeError|ajv|sqlite|Unexpected token/i;

function assertProblem(res: Res, status: number, code: string, what: string): void {
  assert.equal(res.statusCode, status, `${what}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/, what);
  const body = json(res);
  assert.equal(body.code, code, what);
  assert.equal(body.status, status, what);
  assert.equal(typeof body.title, 'string');
  assert.equal(typeof body.type, 'string');
  assert.doesNotMatch(res.body, LEAKS, what);
}

describe('bad input on every endpoint', () => {
  let h: Harness;
  let t: Tokens;
  before(async () => {
    h = await harness();
    t = await registerAndLogin(h.app);
  });
  after(async () => h.close());

  const send = (method: 'POST' | 'GET' | 'DELETE' | 'PUT', url: string, payload: string | undefined, headers: Record<string, string> = {}): Promise<Res> =>
    h.app.inject({ method, url, ...(payload !== undefined ? { payload } : {}), headers: { 'content-type': 'application/json', ...headers } });

  const jsonBodies: [string, string][] = [
    ['malformed JSON', '{"username": "x", '],
    ['not an object', '"just a string"'],
    ['an array', '[1,2,3]'],
    ['null', 'null'],
    ['number', '42'],
    ['__proto__ pollution', '{"__proto__": {"admin": true}, "username": "abc", "password": "12345678"}'],
  ];

  for (const url of ['/v1/users', '/v1/login', '/v1/refresh']) {
    it(`${url}: malformed bodies get 400 invalid_request`, async () => {
      for (const [name, body] of jsonBodies) assertProblem(await send('POST', url, body), 400, 'invalid_request', `${url} ${name}`);
      assertProblem(await send('POST', url, ''), 400, 'invalid_request', `${url} empty body`);
      assertProblem(await send('POST', url, '{}'), 400, 'invalid_request', `${url} missing fields`);
    });

    it(`${url}: wrong content type → 415, oversized body → 413`, async () => {
      assertProblem(await send('POST', url, 'username=a&password=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type', `${url} form`);
      assertProblem(await send('POST', url, 'hello', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type', `${url} text`);
      assertProblem(await send('POST', url, JSON.stringify({ username: 'a', password: 'x'.repeat(70_000) })), 413, 'payload_too_large', `${url} huge`);
    });
  }

  it('/v1/users: wrong types, bad lengths, bad characters, unknown fields', async () => {
    const cases: [string, unknown][] = [
      ['numeric username', { username: 12345, password: 'long enough' }],
      ['numeric password', { username: 'valid', password: 12345678 }],
      ['object password', { username: 'valid', password: { a: 1 } }],
      ['short password', { username: 'valid', password: 'short' }],
      ['1025-char password', { username: 'valid', password: 'p'.repeat(1025) }],
      ['short username', { username: 'ab', password: 'long enough' }],
      ['65-char username', { username: 'u'.repeat(65), password: 'long enough' }],
      ['space in username', { username: 'has space', password: 'long enough' }],
      ['slash in username', { username: 'a/b/c', password: 'long enough' }],
      ['emoji in username', { username: 'abc😀', password: 'long enough' }],
      ['NUL in username', { username: 'abc\u0000def', password: 'long enough' }],
      ['unknown field', { username: 'valid', password: 'long enough', admin: true }],
    ];
    for (const [name, body] of cases) assertProblem(await send('POST', '/v1/users', JSON.stringify(body)), 400, 'invalid_request', name);
    // the 1024-character edge is accepted, counted in characters not bytes
    const edge = await send('POST', '/v1/users', JSON.stringify({ username: 'edge.case', password: 'é'.repeat(1024) }));
    assert.equal(edge.statusCode, 201, edge.body);
    const tooFew = await send('POST', '/v1/users', JSON.stringify({ username: 'edge.case2', password: '😀'.repeat(7) }));
    assertProblem(tooFew, 400, 'invalid_request', '7 astral characters are 7 characters');
  });

  it('/v1/login: wrong types and unknown fields are 400; strange usernames are a plain 401', async () => {
    for (const body of [{ username: 1, password: 'x' }, { username: 'alice' }, { username: 'alice', password: 'x', extra: 1 }, { username: 'alice', password: null }]) {
      assertProblem(await send('POST', '/v1/login', JSON.stringify(body)), 400, 'invalid_request', JSON.stringify(body));
    }
    for (const username of ['a', 'has space', '../../etc/passwd', "'; DROP TABLE users; --", '😀😀😀']) {
      assertProblem(await send('POST', '/v1/login', JSON.stringify({ username, password: 'whatever1' })), 401, 'invalid_credentials', username);
    }
  });

  it('/v1/refresh: garbage tokens are 401 invalid_grant', async () => {
    for (const token of ['x', 'a'.repeat(43), t.access_token.slice(0, 400), '!'.repeat(43)]) {
      assertProblem(await send('POST', '/v1/refresh', JSON.stringify({ refresh_token: token })), 401, 'invalid_grant', token.slice(0, 10));
    }
    assertProblem(await send('POST', '/v1/refresh', JSON.stringify({ refresh_token: 123 })), 400, 'invalid_request', 'number');
    assertProblem(await send('POST', '/v1/refresh', JSON.stringify({ refresh_token: 'x'.repeat(600) })), 400, 'invalid_request', 'too long');
  });

  it('/v1/logout: bad scope is 400, garbage bearer is 401 (before the body is read)', async () => {
    assertProblem(await send('POST', '/v1/logout', JSON.stringify({ scope: 'everything' }), bearer(t.access_token)), 400, 'invalid_request', 'scope');
    assertProblem(await send('POST', '/v1/logout', JSON.stringify({ scope: 'all', x: 1 }), bearer(t.access_token)), 400, 'invalid_request', 'extra');
    assertProblem(await send('POST', '/v1/logout', '{bad json', bearer(t.access_token)), 400, 'invalid_request', 'json');
    assertProblem(await send('POST', '/v1/logout', '{bad json', bearer('garbage')), 401, 'invalid_token', 'garbage bearer');
    // still logged in after all of that
    assert.equal((await h.app.inject({ url: '/v1/me', headers: bearer(t.access_token) })).statusCode, 200);
  });

  it('bearer routes: garbage tokens are 401 with the RFC 6750 challenge', async () => {
    for (const [method, url] of [['GET', '/v1/me'], ['GET', '/v1/sessions'], ['DELETE', '/v1/sessions/abc'], ['POST', '/v1/logout']] as const) {
      for (const auth of ['Bearer garbage', 'Bearer ' + 'a'.repeat(3000), 'Token abc', '']) {
        const res = await send(method, url, method === 'POST' ? '{}' : undefined, auth ? { authorization: auth } : {});
        assertProblem(res, 401, 'invalid_token', `${method} ${url} ${auth.slice(0, 15)}`);
        assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
      }
    }
  });

  it('DELETE /v1/sessions/:id: overlong ids are 400 or 414, odd ones 404, never 500', async () => {
    const long = await send('DELETE', `/v1/sessions/${'x'.repeat(100)}`, undefined, bearer(t.access_token));
    assertProblem(long, 400, 'invalid_request', 'long id');
    const huge = await send('DELETE', `/v1/sessions/${'x'.repeat(300)}`, undefined, bearer(t.access_token));
    assertProblem(huge, 414, 'uri_too_long', 'huge id');
    const weird = await send('DELETE', `/v1/sessions/${encodeURIComponent("'; --")}`, undefined, bearer(t.access_token));
    assertProblem(weird, 404, 'not_found', 'weird id');
  });

  it('unknown paths and methods are problem+json 404', async () => {
    assertProblem(await send('GET', '/nope', undefined), 404, 'not_found', 'unknown path');
    assertProblem(await send('PUT', '/v1/login', '{}'), 404, 'not_found', 'unknown method');
  });

  it('oversized headers are refused with a problem document by the HTTP parser', async () => {
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;
    const res = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/me', headers: { 'x-big': 'a'.repeat(20_000) } }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, type: String(r.headers['content-type']), body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 431);
    assert.equal(res.type, 'application/problem+json');
    assert.equal((JSON.parse(res.body) as { code: string }).code, 'headers_too_large');
  });
});
