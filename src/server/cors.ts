// CORS for LATCH_CORS_ORIGINS: pages on those origins may call the API with credentials (the
// refresh cookie). Only a listed origin is ever echoed; there is no wildcard.
import type { FastifyRequest } from 'fastify';
import { LatchError } from '../core/errors.ts';
import type { App } from './app-types.ts';

const ALLOW_METHODS = 'GET, POST, DELETE';
const ALLOW_HEADERS = 'Authorization, Content-Type, DPoP';
// the SDK reads these to explain a 401 or a wait
const EXPOSE_HEADERS = 'Retry-After, WWW-Authenticate';
const PREFLIGHT_MAX_AGE_S = 600;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** left out of the OpenAPI document */
    hidden?: boolean;
  }
}

export function installCors(app: App, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const allowed = new Set(origins);
  const listedOrigin = (request: FastifyRequest): string | null => {
    const origin = request.headers.origin;
    return typeof origin === 'string' && allowed.has(origin) ? origin : null;
  };

  app.addHook('onRequest', async (request, reply) => {
    // the answer depends on Origin, so no cache may hand one origin's answer to another
    reply.header('vary', 'Origin');
    const origin = listedOrigin(request);
    if (origin === null) return;
    reply.header('access-control-allow-origin', origin);
    reply.header('access-control-allow-credentials', 'true');
    reply.header('access-control-expose-headers', EXPOSE_HEADERS);
  });

  app.options('/*', { config: { hidden: true } }, async (request, reply) => {
    if (request.headers['access-control-request-method'] === undefined) throw new LatchError('not_found');
    if (listedOrigin(request) === null) throw new LatchError('origin_not_allowed', { detail: 'This origin is not in LATCH_CORS_ORIGINS' });
    return reply
      .code(204)
      .header('access-control-allow-methods', ALLOW_METHODS)
      .header('access-control-allow-headers', ALLOW_HEADERS)
      .header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S))
      .send();
  });
}
