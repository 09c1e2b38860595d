// Framework glue: the bearer token of a request, and the 401/503 answer when it is refused.
// Typed structurally, so this library needs neither Fastify nor Express installed.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { VerifyError } from './errors.ts';
import type { LatchClaims } from './token.ts';
import type { VerifyContext } from './verifier.ts';

/** The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), or null. */
export function bearerToken(header: string | string[] | null | undefined): string | null {
  if (typeof header !== 'string' || header.length < 8 || header.charCodeAt(6) !== 32) return null;
  // the scheme is case-insensitive (RFC 7235 §2.1); compared in place, as this runs on every request
  for (let i = 0; i < 6; i++) if ((header.charCodeAt(i) | 0x20) !== BEARER[i]) return null;
  let start = 7;
  let end = header.length;
  while (start < end && header.charCodeAt(start) === 32) start += 1;
  while (end > start && header.charCodeAt(end - 1) === 32) end -= 1;
  return end > start ? header.slice(start, end) : null;
}

const BEARER = [...'bearer'].map((c) => c.charCodeAt(0));

/** The RFC 9457 problem document for a refusal, with the same codes as Latch's own API. */
export function problemOf(err: VerifyError): { type: string; title: string; status: number; code: string } {
  const stale = err.status === 503;
  const code = stale ? 'revocation_state_stale' : 'invalid_token';
  const title = stale
    ? 'The revocation state could not be confirmed recently; tokens are refused until it is'
    : 'The access token is missing, invalid, expired or revoked';
  return { type: `https://latch.dev/errors/${code}`, title, status: err.status, code };
}

/** The headers a refusal carries: the RFC 6750 challenge on 401, Retry-After on 503. */
export function refusalHeaders(err: VerifyError): Record<string, string> {
  return err.status === 401
    ? { 'www-authenticate': err.challenge, 'content-type': 'application/problem+json; charset=utf-8', 'cache-control': 'no-store' }
    : { 'retry-after': '1', 'content-type': 'application/problem+json; charset=utf-8', 'cache-control': 'no-store' };
}

const missing = (): VerifyError => new VerifyError('token_missing', 'no bearer token in the request');

/** What the Fastify hook needs of a request and a reply (Fastify's own types fit). */
export interface FastifyRequestLike {
  headers: IncomingHttpHeaders;
  method: string;
  url: string;
  auth?: LatchClaims | null;
}
export interface FastifyReplyLike {
  code(statusCode: number): FastifyReplyLike;
  headers(values: Record<string, string>): FastifyReplyLike;
  send(payload: string): unknown;
}

/** What the Express middleware needs (Express's Request and Response fit; so does plain node:http). */
export type ExpressRequestLike = IncomingMessage & { auth?: LatchClaims | null };

export interface TokenVerifier {
  verify(token: string, context?: VerifyContext): Promise<LatchClaims>;
  /** the claims at once when no I/O is needed, else a promise; throws or rejects with a VerifyError */
  check(token: string, context?: VerifyContext): LatchClaims | Promise<LatchClaims>;
}

/** Runs `check`, then `accept` or `refuse`, synchronously when the check needed no I/O. */
function settle(run: () => LatchClaims | Promise<LatchClaims>, accept: (claims: LatchClaims) => void, refuse: (err: unknown) => void): void {
  let result: LatchClaims | Promise<LatchClaims>;
  try {
    result = run();
  } catch (err) {
    return refuse(err);
  }
  if (result instanceof Promise) result.then(accept, refuse);
  else accept(result);
}

/** A callback-style onRequest hook: no promise and no closure per request when the token needs no key refetch. */
export function fastifyHook(verifier: TokenVerifier): (request: FastifyRequestLike, reply: FastifyReplyLike, done: (err?: Error) => void) => void {
  const refuse = (err: unknown, reply: FastifyReplyLike, done: (err?: Error) => void): void => {
    if (!(err instanceof VerifyError)) return done(err instanceof Error ? err : new Error(String(err)));
    // answering from a hook: send and do not call done, so Fastify stops here
    reply.code(err.status).headers(refusalHeaders(err)).send(JSON.stringify(problemOf(err)));
  };
  return (request, reply, done) => {
    const token = bearerToken(request.headers.authorization);
    if (token === null) return refuse(missing(), reply, done);
    let result: LatchClaims | Promise<LatchClaims>;
    try {
      result = verifier.check(token, { method: request.method, url: request.url, headers: request.headers });
    } catch (err) {
      return refuse(err, reply, done);
    }
    if (result instanceof Promise) {
      result.then(
        (claims) => {
          request.auth = claims;
          done();
        },
        (err: unknown) => refuse(err, reply, done),
      );
      return;
    }
    request.auth = result;
    done();
  };
}

export function expressMiddleware(verifier: TokenVerifier): (req: ExpressRequestLike, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    const token = bearerToken(req.headers.authorization);
    settle(
      () => {
        if (token === null) throw missing();
        return verifier.check(token, { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
      },
      (claims) => {
        req.auth = claims;
        next();
      },
      (err) => {
        if (!(err instanceof VerifyError)) return next(err);
        sendRefusal(res, err);
      },
    );
  };
}

/** Writes the 401/503 answer on a node:http response. */
export function sendRefusal(res: ServerResponse, err: VerifyError): void {
  const body = JSON.stringify(problemOf(err));
  res.writeHead(err.status, { ...refusalHeaders(err), 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

const isFetchRequest = (request: IncomingMessage | Request): request is Request => typeof (request.headers as Headers).get === 'function';

/** The claims of a node:http IncomingMessage's or a Fetch Request's bearer token. */
export function authenticateRequest(verifier: TokenVerifier, request: IncomingMessage | Request): Promise<LatchClaims> {
  if (isFetchRequest(request)) {
    const token = bearerToken(request.headers.get('authorization'));
    return token === null ? Promise.reject(missing()) : verifier.verify(token, { method: request.method, url: request.url, headers: request.headers });
  }
  const token = bearerToken(request.headers.authorization);
  return token === null ? Promise.reject(missing()) : verifier.verify(token, { method: request.method ?? 'GET', url: request.url ?? '/', headers: request.headers });
}
