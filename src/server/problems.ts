// RFC 9457 problem documents: every error of the /v1 API leaves through here. Anything that
// is not a known client error becomes a generic 500 server_error; the cause stays in the log.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { ERRORS, LatchError, StoreUnavailableError, type ErrorCode } from '../core/errors.ts';

export const PROBLEM_TYPE_BASE = 'https://latch.dev/errors/';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  [extra: string]: unknown;
}

export function problemOf(code: ErrorCode, detail?: string, extra?: Record<string, unknown>): Problem {
  const { status, title } = ERRORS[code];
  return { type: `${PROBLEM_TYPE_BASE}${code}`, title, status, code, ...(detail ? { detail } : {}), ...extra };
}

/** Maps Fastify's own request errors (parsing, validation, limits) to our codes. */
function fromFastify(err: FastifyError): LatchError {
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const first = err.validation[0];
    const path = first?.instancePath ? `${where}${first.instancePath.replace(/\//g, '.')}` : where;
    const extra = (first?.params as { additionalProperty?: unknown } | undefined)?.additionalProperty;
    const message = typeof extra === 'string' ? `has an unknown field "${extra.slice(0, 40)}"` : (first?.message ?? 'is invalid');
    return new LatchError('invalid_request', { detail: `${path} ${message}`.slice(0, 300) });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new LatchError('payload_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new LatchError('unsupported_media_type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new LatchError('invalid_request', { detail: 'the body is empty; send a JSON object' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new LatchError('invalid_request', { detail: 'the body is not valid JSON' });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new LatchError('uri_too_long');
    case 'FST_ERR_BAD_URL':
      return new LatchError('invalid_request', { detail: 'the URL is malformed' });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new LatchError('invalid_request', { detail: 'Content-Length does not match the body' });
  }
  if (err instanceof SyntaxError || (err as { name?: string }).name === 'SyntaxError') {
    return new LatchError('invalid_request', { detail: 'the body is not valid JSON' });
  }
  const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
  if (status === 404) return new LatchError('not_found');
  if (status === 413) return new LatchError('payload_too_large');
  if (status === 415) return new LatchError('unsupported_media_type');
  if (status >= 400 && status < 500) return new LatchError('invalid_request');
  return new LatchError('server_error', { cause: err });
}

export function toLatchError(err: unknown): LatchError {
  if (err instanceof LatchError) return err;
  if (err instanceof StoreUnavailableError) return new LatchError('store_unavailable', { retryAfter: 1, cause: err });
  if (err && typeof err === 'object' && ('code' in err || 'validation' in err || 'statusCode' in err)) return fromFastify(err as FastifyError);
  return new LatchError('server_error', { cause: err });
}

/** Routes that take a bearer token answer 401 with this challenge (RFC 6750). */
export const BEARER_CHALLENGE = 'Bearer error="invalid_token"';

export function sendProblem(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const e = toLatchError(err);
  if (e.status >= 500 && e.code === 'server_error') request.log.error({ err: (e.cause as Error) ?? err }, 'unhandled error');
  else if (e.cause !== undefined) request.log.debug({ code: e.code, cause: String(e.cause instanceof Error ? e.cause.message : e.cause) }, 'request refused');
  if (e.retryAfter !== undefined) reply.header('retry-after', String(e.retryAfter));
  if (e.code === 'invalid_token' && request.routeOptions.config.auth === 'bearer') reply.header('www-authenticate', BEARER_CHALLENGE);
  const extra = { ...(e.retryAfter !== undefined ? { retry_after: e.retryAfter } : {}), ...e.extra };
  return reply
    .code(e.status)
    .type('application/problem+json')
    .send(problemOf(e.code, e.detail, extra));
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => sendProblem(request, reply, err));
  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, new LatchError('not_found')));
}

/** Errors the HTTP parser raises before any route runs (bad request line, oversized headers). */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'invalid_request';
  const body = JSON.stringify(problemOf(code));
  socket.end(
    `HTTP/1.1 ${ERRORS[code].status} ${code === 'headers_too_large' ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      `Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}
