// The OAuth standard endpoints that existing tooling expects: RFC 8414 metadata, the RFC 6749
// §6 refresh grant, RFC 7009 revocation and RFC 7662 introspection. Bodies are form-encoded and
// errors are RFC 6749 §5.2 documents ({error, error_description}), not problem+json.
import { ipBucket } from '../../core/throttle.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { ClientRegistry } from '../../core/clients.ts';
import { LatchError, StoreUnavailableError } from '../../core/errors.ts';
import type { Latch } from '../../core/latch.ts';
import { FIRST_PARTY_CLIENT_ID } from '../../core/tokens.ts';
import type { App } from '../app-types.ts';
import { authenticateClient, BASIC_CHALLENGE, ClientAuthError, type ClientAuthentication } from '../client-auth.ts';
import { requestContext } from '../context.ts';
import { LIMITS, RateLimiter } from '../rate-limit.ts';

export const OAUTH_PREFIX = '/oauth';
const ENDPOINTS = ['/token', '/revoke', '/introspect'] as const;
/** A form of a few tokens; more is not a request to these endpoints. */
const FORM_LIMIT = 16 * 1024;

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'rate_limited'
  | 'temporarily_unavailable'
  | 'server_error';

/** An RFC 6749 §5.2 error: the code is API, the description is for people. */
export class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly status: number,
    readonly description: string,
    readonly retryAfter?: number,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

const badRequest = (description: string): OAuthError => new OAuthError('invalid_request', 400, description);

/** Parsed form: one value per name, or every value of a name sent more than once. */
type Form = Record<string, string | string[]>;

function parseForm(body: string): Form {
  const form: Form = Object.create(null) as Form;
  for (const [name, value] of new URLSearchParams(body)) {
    const seen = form[name];
    form[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return form;
}

/** A parameter that must appear at most once (RFC 6749 §3.1, §3.2); undefined when absent or empty. */
function single(form: Form, name: string): string | undefined {
  const value = form[name];
  if (Array.isArray(value)) throw badRequest(`the ${name} parameter is repeated`);
  return value === undefined || value === '' ? undefined : value;
}

function required(form: Form, name: string): string {
  const value = single(form, name);
  if (value === undefined) throw badRequest(`the ${name} parameter is required`);
  return value;
}

function formOf(request: FastifyRequest): Form {
  const body = request.body;
  if (body === undefined || body === null) throw badRequest('send the parameters as an application/x-www-form-urlencoded body');
  return body as Form;
}

/** Maps what a handler or Fastify threw to an RFC error; anything unexpected is a generic server_error. */
function toOAuthError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err;
  if (err instanceof ClientAuthError) return err.reason === 'multiple_methods' ? badRequest(err.message) : new OAuthError('invalid_client', 401, 'client authentication failed');
  if (err instanceof LatchError) {
    switch (err.code) {
      case 'invalid_grant':
        return new OAuthError('invalid_grant', 400, 'the refresh token is invalid, expired or revoked');
      case 'refresh_token_reused':
        return new OAuthError('invalid_grant', 400, 'the refresh token was already used; the session is now revoked');
      case 'rate_limited':
        return new OAuthError('rate_limited', 429, 'too many requests from this client; retry later', err.retryAfter ?? 1);
      case 'revocation_state_stale':
      case 'store_unavailable':
      case 'overloaded':
        return new OAuthError('temporarily_unavailable', 503, 'the server cannot answer right now; retry shortly', err.retryAfter ?? 1);
      case 'server_error':
        return new OAuthError('server_error', 500, 'internal server error');
      default:
        return badRequest(err.detail ?? err.message);
    }
  }
  if (err instanceof StoreUnavailableError) return new OAuthError('temporarily_unavailable', 503, 'the server cannot answer right now; retry shortly', 1);
  const e = err as { code?: unknown; statusCode?: unknown };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return badRequest('the body must be application/x-www-form-urlencoded');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OAuthError('invalid_request', 413, 'the body is too large');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return badRequest('Content-Length does not match the body');
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return badRequest('the request is malformed');
  return new OAuthError('server_error', 500, 'internal server error');
}

function sendOAuthError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const e = toOAuthError(err);
  if (e.status >= 500 && e.error === 'server_error') request.log.error({ err }, 'unhandled error');
  if (e.status === 401) reply.header('www-authenticate', BASIC_CHALLENGE);
  if (e.retryAfter !== undefined) reply.header('retry-after', String(e.retryAfter));
  return reply
    .code(e.status)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ error: e.error, error_description: e.description }));
}

const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

/** GET /.well-known/oauth-authorization-server (RFC 8414): where clients and verifiers find everything. */
export function oauthMetadataRoute(app: App, latch: Latch): void {
  const issuer = latch.settings.issuer;
  const metadata = {
    issuer,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    token_endpoint: `${issuer}${OAUTH_PREFIX}/token`,
    revocation_endpoint: `${issuer}${OAUTH_PREFIX}/revoke`,
    introspection_endpoint: `${issuer}${OAUTH_PREFIX}/introspect`,
    // no authorization endpoint: users log in through /v1/login
    response_types_supported: [] as string[],
    grant_types_supported: ['refresh_token'],
    token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
    revocation_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    latch_revocations_endpoint: `${issuer}/v1/revocations`,
    latch_revocations_stream_endpoint: `${issuer}/v1/revocations/stream`,
    // the claim rules a verifier must apply exactly as the server does
    latch_access_token_max_lifetime: latch.settings.accessTtl,
    latch_staleness_budget: latch.settings.stalenessBudget,
  };
  app.get(
    '/.well-known/oauth-authorization-server',
    {
      schema: {
        summary: 'OAuth 2.0 authorization server metadata (RFC 8414)',
        response: { 200: Type.Object({ issuer: Type.String(), jwks_uri: Type.String() }, { additionalProperties: true }) },
      },
    },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(metadata),
  );
}

export interface OAuthRouteOptions {
  latch: Latch;
  clients: ClientRegistry;
  rateLimits: boolean;
}

/** Registered with `prefix: '/oauth'`, in its own scope: the form parser and RFC error format stay here. */
export async function oauthRoutes(scope: FastifyInstance, options: OAuthRouteOptions): Promise<void> {
  const app = scope as App;
  const { latch, clients } = options;
  const limits = {
    token: new RateLimiter(LIMITS.token, options.rateLimits),
    revocation: new RateLimiter(LIMITS.revocation, options.rateLimits),
    introspection: new RateLimiter(LIMITS.introspection, options.rateLimits),
  };

  // form bodies only, and only here: elsewhere a form is still 415
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_request, body, done) => {
    done(null, parseForm(typeof body === 'string' ? body : body.toString('utf8')));
  });
  app.setErrorHandler((err, request, reply) => sendOAuthError(request, reply, err));
  app.setNotFoundHandler((request, reply) => {
    const known = ENDPOINTS.some((name) => request.url.split('?')[0] === `${OAUTH_PREFIX}${name}`);
    if (known) reply.header('allow', 'POST');
    return sendOAuthError(request, reply, known ? new OAuthError('invalid_request', 405, 'use POST') : new OAuthError('invalid_request', 404, 'no such endpoint; see /.well-known/oauth-authorization-server'));
  });

  // hidden from /openapi.json, whose generator describes JSON bodies and problem+json errors
  const config = { hidden: true } as never;

  const clientOf = (request: FastifyRequest, form: Form): Promise<ClientAuthentication> =>
    authenticateClient(request, clients, { client_id: single(form, 'client_id'), client_secret: single(form, 'client_secret') });

  /** The bucket key: the authenticated client, else the caller's address. */
  const callerKey = (auth: ClientAuthentication, request: FastifyRequest): string => ('client' in auth ? `client:${auth.client.id}` : `ip:${ipBucket(request.ip)}`);

  app.post('/token', { config }, async (request, reply) => {
    const form = formOf(request);
    const auth = await clientOf(request, form);
    if (auth.method === 'none' && auth.clientId !== null && auth.clientId !== FIRST_PARTY_CLIENT_ID) {
      // a confidential client must authenticate; an unknown id is no client at all
      throw new OAuthError('invalid_client', 401, (await clients.exists(auth.clientId)) ? 'this client must authenticate' : 'unknown client');
    }
    if ('client' in auth) {
      // every refresh token belongs to the first-party client; a resource server may not refresh users' sessions
      throw new OAuthError('unauthorized_client', 400, 'this client may not use the refresh_token grant');
    }
    limits.token.check(callerKey(auth, request));
    const grantType = required(form, 'grant_type');
    if (grantType !== 'refresh_token') throw new OAuthError('unsupported_grant_type', 400, 'only grant_type=refresh_token is supported');
    const refreshToken = required(form, 'refresh_token');
    if (single(form, 'scope') !== undefined) throw new OAuthError('invalid_scope', 400, 'Latch tokens carry no scopes');
    const tokens = await latch.refresh(refreshToken, requestContext(request));
    return noStore(reply).send(tokens);
  });

  app.post('/revoke', { config }, async (request, reply) => {
    const form = formOf(request);
    const auth = await clientOf(request, form);
    limits.revocation.check(callerKey(auth, request));
    const token = required(form, 'token');
    // token_type_hint is only a hint (RFC 7009 §2.1): the token's shape says what it is
    await latch.revokeToken(token, requestContext(request), 'client' in auth ? auth.client.id : auth.clientId);
    return noStore(reply).code(200).send();
  });

  app.post('/introspect', { config }, async (request, reply) => {
    const form = formOf(request);
    const auth = await clientOf(request, form);
    if (!('client' in auth)) throw new OAuthError('invalid_client', 401, 'introspection needs a client credential from `latch clients add`');
    limits.introspection.check(callerKey(auth, request));
    const token = required(form, 'token');
    // refresh tokens are never introspectable by resource servers: they see only inactive (RFC 7662 §2.2)
    const principal = token.includes('.') ? latch.introspect(token) : null;
    if (!principal) return noStore(reply).send({ active: false });
    const c = principal.claims;
    return noStore(reply).send({
      active: true,
      token_type: 'Bearer',
      iss: c.iss,
      sub: c.sub,
      aud: c.aud,
      client_id: c.client_id,
      iat: c.iat,
      exp: c.exp,
      jti: c.jti,
      sid: c.sid,
    });
  });
}
