// Browser mode: the refresh token in an HttpOnly cookie, and the same-origin rule that keeps
// another site from spending it (CSRF). Script never sees the cookie; only /v1 receives it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LatchError } from '../core/errors.ts';

export const REFRESH_COOKIE = 'latch_refresh';
const COOKIE_PATH = '/v1';

export interface RefreshCookieOptions {
  /** the issuer URL: its origin is this server's own, and an https issuer makes the cookie Secure */
  issuer: string;
  /** LATCH_CORS_ORIGINS: other origins whose pages may use the cookie through the SDK */
  corsOrigins: readonly string[];
}

export class RefreshCookie {
  private readonly issuerOrigin: string;
  private readonly issuerIsHttps: boolean;
  private readonly allowed: ReadonlySet<string>;

  constructor(options: RefreshCookieOptions) {
    const issuer = new URL(options.issuer);
    this.issuerOrigin = issuer.origin;
    this.issuerIsHttps = issuer.protocol === 'https:';
    this.allowed = new Set(options.corsOrigins);
  }

  read(request: FastifyRequest): string | null {
    const value = request.cookies[REFRESH_COOKIE];
    return value ? value : null;
  }

  set(request: FastifyRequest, reply: FastifyReply, refreshToken: string, maxAgeSeconds: number): void {
    reply.setCookie(REFRESH_COOKIE, refreshToken, { ...this.attributes(request), maxAge: maxAgeSeconds });
  }

  /** Cookie mode: the refresh token leaves in the cookie and is dropped from the body. */
  moveToCookie<T extends { refresh_token: string; refresh_expires_in: number }>(request: FastifyRequest, reply: FastifyReply, tokens: T): Omit<T, 'refresh_token'> {
    const { refresh_token: refreshToken, ...rest } = tokens;
    this.set(request, reply, refreshToken, tokens.refresh_expires_in);
    return rest;
  }

  clear(request: FastifyRequest, reply: FastifyReply): void {
    // the attributes must match the ones the cookie was set with, or the browser keeps it
    reply.clearCookie(REFRESH_COOKIE, this.attributes(request));
  }

  /**
   * A browser sends Origin on every POST, so a request that uses the cookie without one, or
   * from a page that is neither this server nor a configured origin, is refused untouched.
   */
  assertSameOrigin(request: FastifyRequest, options: { allowMissing?: boolean } = {}): void {
    const origin = request.headers.origin;
    if (origin === undefined && options.allowMissing) return;
    if (this.isSameOrigin(request)) return;
    throw new LatchError('origin_not_allowed', {
      detail: origin === undefined ? 'A request that uses the refresh cookie must carry an Origin header' : 'This origin may not use the refresh cookie',
      cause: `origin ${String(origin).slice(0, 100)}`,
    });
  }

  /** Origin is this server (its issuer, or the host the request was sent to) or a configured origin. */
  isSameOrigin(request: FastifyRequest): boolean {
    const origin = request.headers.origin;
    if (typeof origin !== 'string') return false;
    if (origin === this.issuerOrigin || this.allowed.has(origin)) return true;
    return origin === requestOrigin(request);
  }

  private attributes(request: FastifyRequest): { httpOnly: true; sameSite: 'strict'; path: string; secure: boolean } {
    return { httpOnly: true, sameSite: 'strict', path: COOKIE_PATH, secure: this.issuerIsHttps || request.protocol === 'https' };
  }
}

/** The origin the request was addressed to (Host, or X-Forwarded-Host behind a trusted proxy). */
function requestOrigin(request: FastifyRequest): string | null {
  try {
    // through URL so that an explicit default port ("host:80") compares equal to the browser's Origin
    return new URL(`${request.protocol}://${request.host}`).origin;
  } catch {
    return null;
  }
}
