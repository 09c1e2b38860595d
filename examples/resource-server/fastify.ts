// A Fastify API protected by latch/verify: GET /api/hello needs a Latch access token and
// answers with its user id; GET /hello is the same route without auth. Run it against a local
// Latch (see README.md):
//
//   LATCH_CLIENT_ID=… LATCH_CLIENT_SECRET=… npx tsx examples/resource-server/fastify.ts
import Fastify, { type FastifyRequest } from 'fastify';
import { createVerifier, type LatchClaims } from 'latch/verify';
import { settings } from './settings.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** set by verifier.fastify() on every route of the protected scope */
    auth: LatchClaims | null;
  }
}

const config = settings();
const verifier = await createVerifier({ issuer: config.issuer, audience: config.audience, client: config.client });

const app = Fastify();
// declared up front, so Fastify keeps one request shape (faster than adding the property later)
app.decorateRequest('auth', null);

const hello = async (request: FastifyRequest) => ({ hello: request.auth?.sub ?? 'anonymous' });

app.get('/hello', hello);
app.get('/readyz', async (_request, reply) => {
  const status = verifier.status();
  return reply.code(status.fresh ? 200 : 503).send({ ready: status.fresh, revocation_seq: status.seq });
});

// everything registered in this scope needs a live token: request.auth is set, or the request gets 401
await app.register(async (api) => {
  api.addHook('onRequest', verifier.fastify());
  api.get('/api/hello', hello);
});

const address = await app.listen({ host: config.host, port: config.port });
process.stdout.write(`listening on ${address}\n`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app
      .close()
      .then(() => verifier.close())
      .then(() => process.exit(0));
  });
}
