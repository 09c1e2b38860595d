// Builds the Fastify application around a started Latch: limits, logging with redaction,
// problem+json errors, security headers and the route groups.
import Fastify, { type FastifyServerOptions } from 'fastify';
import cookie from '@fastify/cookie';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Latch } from '../core/latch.ts';
import type { App } from './app-types.ts';
import { buildOpenApi, collectRoutes } from './openapi.ts';
import { metricsRoute, PrometheusMetrics } from './metrics.ts';
import { clientErrorHandler, installProblemHandlers, sendProblem } from './problems.ts';
import { RefreshCookie } from './cookies.ts';
import { installCors } from './cors.ts';
import { authRoutes } from './routes/auth.ts';
import { webRoutes } from './routes/web.ts';
import { operationRoutes } from './routes/operations.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { passwordRoutes, userRoutes } from './routes/users.ts';
import { adminRoutes } from './routes/admin.ts';
import { ClientRegistry } from '../core/clients.ts';
import { OAUTH_PREFIX, oauthMetadataRoute, oauthRoutes } from './routes/oauth.ts';
import { revocationRoutes } from './routes/revocations.ts';

export interface AppOptions {
  logLevel?: string;
  /** LATCH_TRUST_PROXY: "true", a hop count, or a comma-separated list of addresses/CIDRs */
  trustProxy?: string | undefined;
  version?: string;
  /** LATCH_CORS_ORIGINS: origins whose pages may call the API with credentials */
  corsOrigins?: readonly string[];
  /** LATCH_RATE_LIMITS: false lifts the request-rate limits (benchmarks, load tests); default true */
  rateLimits?: boolean;
  /** Prometheus metrics for GET /metrics (the same object the core reports to) */
  metrics?: PrometheusMetrics;
  busConnected?: () => boolean | null;
}

export const BODY_LIMIT = 64 * 1024;
export const HEADER_LIMIT = 16 * 1024;

/** Fastify's trustProxy from LATCH_TRUST_PROXY. */
export function trustProxyOption(value: string | undefined): FastifyServerOptions['trustProxy'] {
  if (!value) return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address: string, hop: number) => hop < hops;
  }
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export async function buildApp(latch: Latch, options: AppOptions = {}): Promise<App> {
  const app = Fastify({
    logger:
      options.logLevel === 'silent' || options.logLevel === undefined
        ? false
        : {
            level: options.logLevel,
            redact: {
              paths: [
                'req.headers.authorization',
                'req.headers.cookie',
                'res.headers["set-cookie"]',
                'req.body.password',
                'req.body.current_password',
                'req.body.new_password',
                'req.body.refresh_token',
                'req.body.device_token',
                'req.body.token',
                'req.body.client_secret',
              ],
              censor: '[redacted]',
            },
          },
    bodyLimit: BODY_LIMIT,
    routerOptions: { maxParamLength: 200 },
    http: { maxHeaderSize: HEADER_LIMIT },
    trustProxy: trustProxyOption(options.trustProxy),
    clientErrorHandler,
    frameworkErrors: (err, request, reply) => void sendProblem(request, reply, err),
    requestIdHeader: false,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>() as App;

  app.decorateRequest('principal', null);
  await app.register(cookie);
  // JSON only: a text/plain body is 415, not a string that fails validation
  app.removeContentTypeParser('text/plain');
  // an empty JSON body is no body (DELETE and logout from clients that always send the header)
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    return parseJson(request, body.toString(), done);
  });
  installProblemHandlers(app);
  app.addHook('onSend', async (_request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
  });

  installCors(app, options.corsOrigins ?? []);
  const routes = collectRoutes(app);
  const metrics = options.metrics ?? new PrometheusMetrics();
  metrics.observe(latch, options.busConnected ?? (() => null));
  metricsRoute(app, metrics);
  const rateLimits = options.rateLimits !== false;
  userRoutes(app, latch, { rateLimits });
  passwordRoutes(app, latch);
  adminRoutes(app, latch);
  authRoutes(app, latch, new RefreshCookie({ issuer: latch.settings.issuer, corsOrigins: options.corsOrigins ?? [] }), { rateLimits });
  sessionRoutes(app, latch);
  operationRoutes(app, latch);
  const clients = new ClientRegistry(latch.store, latch.clock);
  revocationRoutes(app, latch, { clients, rateLimits });
  oauthMetadataRoute(app, latch);
  // its own scope: the form-urlencoded body parser and the RFC 6749 error format apply to /oauth/* only
  await app.register(oauthRoutes, { prefix: OAUTH_PREFIX, latch, clients, rateLimits });
  await webRoutes(app);

  let openapi: Record<string, unknown> | null = null;
  app.get('/openapi.json', { config: { hidden: true } as never }, async () => {
    openapi ??= buildOpenApi(routes, { issuer: latch.settings.issuer, version: options.version ?? '0' });
    return openapi;
  });
  await app.ready();
  return app;
}
