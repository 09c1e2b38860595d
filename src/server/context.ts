// Request-scoped facts the routes share: the caller's context and the bearer principal.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Latch, Principal, RequestContext } from '../core/latch.ts';
import type { ErrorCode } from '../core/errors.ts';
import { LatchError } from '../core/errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'bearer': the route takes an access token (401s carry the RFC 6750 challenge) */
    auth?: 'bearer' | 'none';
    /** every error code the route can answer, for the OpenAPI document */
    errors?: ErrorCode[];
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export function requestContext(request: FastifyRequest): RequestContext {
  const ua = request.headers['user-agent'];
  return { ip: request.ip ?? null, userAgent: typeof ua === 'string' ? ua : null };
}

/** The bearer token of the Authorization header, or null. */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer') return null;
  const token = header.slice(space + 1).trim();
  return token.length > 0 ? token : null;
}

/** onRequest hook (before the body is even parsed) that establishes request.principal from the bearer token, with no I/O. */
export function requireBearer(latch: Latch) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = bearerToken(request);
    if (!token) throw new LatchError('invalid_token', { cause: 'no bearer token' });
    request.principal = latch.authenticate(token);
  };
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new LatchError('invalid_token');
  return request.principal;
}

export const BEARER_ERRORS: ErrorCode[] = ['invalid_token', 'revocation_state_stale'];

/** onRequest hook for admin routes: a valid bearer token whose user the store says is an admin. */
export function requireAdmin(latch: Latch) {
  const bearer = requireBearer(latch);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    await bearer(request, reply);
    await latch.admin.requireAdmin(principalOf(request).userId);
  };
}

export const ADMIN_ERRORS: ErrorCode[] = [...BEARER_ERRORS, 'forbidden'];
