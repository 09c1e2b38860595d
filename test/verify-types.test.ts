// The public types of latch/verify, checked by `tsc -p tsconfig.json` (this file is compiled
// with the rest of test/): the adapters fit Fastify's and Express's own signatures, the error
// codes are a closed union, and the claims are typed. The runtime part checks the exports.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import Fastify from 'fastify';
import * as verify from 'latch/verify';
import type { LatchClaims, Verifier, VerifyErrorCode } from 'latch/verify';

/** Compiles only while the switch covers every code: adding a code is a visible API change. */
function statusOf(code: VerifyErrorCode): 401 | 503 {
  switch (code) {
    case 'token_missing':
    case 'token_malformed':
    case 'algorithm_not_allowed':
    case 'unknown_key':
    case 'signature_invalid':
    case 'claim_invalid':
    case 'token_expired':
    case 'token_not_yet_valid':
    case 'token_revoked':
    case 'key_disabled':
      return 401;
    case 'revocation_state_stale':
    case 'verifier_closed':
    case 'issuer_unavailable':
      return 503;
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

/** Never called: it only has to compile. */
export function wiring(verifier: Verifier): void {
  const fastify = Fastify();
  fastify.addHook('onRequest', verifier.fastify());
  const app = express();
  app.use(verifier.express());
  app.use('/api', verifier.express());
  void verifier.verify('token').then((claims: LatchClaims) => {
    const sub: string = claims.sub;
    const exp: number = claims.exp;
    // @ts-expect-error claims are read-only
    claims.sub = 'someone else';
    return [sub, exp];
  });
  void verifier.verify('token', { method: 'GET', url: '/', headers: { authorization: 'Bearer x' } });
  void verifier.authenticate(new Request('https://api.example/'));
}

describe('latch/verify exports', () => {
  it('exports createVerifier, VerifyError and the adapters’ helpers', () => {
    assert.equal(typeof verify.createVerifier, 'function');
    assert.equal(typeof verify.isVerifyError, 'function');
    assert.equal(typeof verify.bearerToken, 'function');
    assert.equal(typeof verify.sendRefusal, 'function');
    const err = new verify.VerifyError('token_revoked', 'revoked');
    assert.ok(verify.isVerifyError(err));
    assert.equal(err.status, statusOf(err.code));
    assert.equal(new verify.VerifyError('revocation_state_stale', 'stale').status, statusOf('revocation_state_stale'));
    assert.equal(verify.bearerToken('Bearer abc'), 'abc');
    assert.equal(verify.bearerToken('bearer  abc '), 'abc');
    assert.equal(verify.bearerToken('Basic abc'), null);
    assert.equal(verify.bearerToken(undefined), null);
  });
});
