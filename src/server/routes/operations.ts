// Published keys and health: what load balancers and verifiers poll.
import { Type } from 'typebox';
import type { Latch } from '../../core/latch.ts';
import { LatchError } from '../../core/errors.ts';
import type { App } from '../app-types.ts';

export function operationRoutes(app: App, latch: Latch): void {
  app.get(
    '/.well-known/jwks.json',
    { schema: { summary: 'Public signing keys (RFC 7517)', response: { 200: Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) }) } } },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=60').send(latch.keyRing.jwks()),
  );

  app.get('/healthz', { schema: { summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'The store answers and the revocation state is fresh',
        response: { 200: Type.Object({ status: Type.Literal('ready'), revocation_seq: Type.Integer(), revocation_confirmed_ms_ago: Type.Integer() }) },
      },
      config: { errors: ['not_ready'] },
    },
    async () => {
      try {
        await latch.store.revocationHead();
      } catch (err) {
        throw new LatchError('not_ready', { detail: 'the store does not answer', retryAfter: 1, cause: err });
      }
      if (!latch.revocations.isFresh()) throw new LatchError('not_ready', { detail: 'the revocation state is stale', retryAfter: 1 });
      return {
        status: 'ready' as const,
        revocation_seq: latch.revocations.position.seq,
        revocation_confirmed_ms_ago: Math.max(0, Math.round(latch.clock.now() - latch.revocations.lastConfirmedAt)),
      };
    },
  );
}
