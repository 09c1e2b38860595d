// GET /openapi.json: an OpenAPI 3.1 document generated from the route schemas, listing every
// error code each route can answer.
import type { FastifyInstance, RouteOptions } from 'fastify';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import { Problem } from './schemas.ts';

interface Collected {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  errors: ErrorCode[];
  bearer: boolean;
}

const ALWAYS: ErrorCode[] = ['server_error', 'store_unavailable'];
/** a path parameter that is too long or malformed */
const WITH_PARAMS: ErrorCode[] = ['invalid_request', 'uri_too_long'];
const WITH_BODY: ErrorCode[] = ['invalid_request', 'payload_too_large', 'unsupported_media_type'];

export function collectRoutes(app: FastifyInstance): Collected[] {
  const routes: Collected[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.url === '*' || (route.config as { hidden?: boolean } | undefined)?.hidden) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      const config = (route.config ?? {}) as { errors?: ErrorCode[]; auth?: string };
      routes.push({ method: method.toLowerCase(), url: route.url, schema: (route.schema ?? {}) as Record<string, unknown>, errors: config.errors ?? [], bearer: config.auth === 'bearer' });
    }
  });
  return routes;
}

export function buildOpenApi(routes: Collected[], info: { issuer: string; version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const responses: Record<string, unknown> = {};
    for (const [status, schema] of Object.entries((r.schema.response ?? {}) as Record<string, unknown>)) {
      responses[status] = { description: 'Success', content: { 'application/json': { schema } } };
    }
    if (Object.keys(responses).length === 0) responses['204'] = { description: 'Done, no content' };
    const codes = [...new Set([...r.errors, ...(r.schema.body ? WITH_BODY : []), ...(r.schema.params ? WITH_PARAMS : []), ...ALWAYS])];
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of codes) byStatus.set(ERRORS[code].status, [...(byStatus.get(ERRORS[code].status) ?? []), code]);
    for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      responses[String(status)] = {
        description: list.map((c) => `\`${c}\`: ${ERRORS[c].title}`).join('; '),
        'x-error-codes': list,
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      };
    }
    const parameters = Object.entries(((r.schema.params as { properties?: Record<string, unknown> })?.properties ?? {}) as Record<string, unknown>).map(([name, schema]) => ({
      name,
      in: 'path',
      required: true,
      schema,
    }));
    paths[path] ??= {};
    paths[path]![r.method] = {
      summary: r.schema.summary,
      ...(parameters.length ? { parameters } : {}),
      ...(r.schema.body ? { requestBody: { required: (r.schema.body as { '~optional'?: boolean })['~optional'] !== true, content: { 'application/json': { schema: r.schema.body } } } } : {}),
      ...(r.bearer ? { security: [{ bearer: [] }] } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Latch', version: info.version, description: 'Authentication server whose logout really logs out.' },
    servers: [{ url: info.issuer }],
    paths,
    components: {
      schemas: { Problem },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (RFC 9068 at+jwt)' } },
    },
  };
}
