// Login, refresh and logout: where sessions begin, rotate and end.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { isLatchError, LatchError } from '../../core/errors.ts';
import type { Latch, LogoutScope, Principal, RequestContext } from '../../core/latch.ts';
import type { App } from '../app-types.ts';
import { BEARER_ERRORS, bearerToken, requestContext } from '../context.ts';
import type { RefreshCookie } from '../cookies.ts';
import { RateLimiter } from '../rate-limit.ts';
import { ipBucket } from '../../core/throttle.ts';
import { sha256 } from '../../core/secrets.ts';
import { LoginResponse, TokenResponse } from '../schemas.ts';
import { DEVICE_COOKIE, setDeviceCookie } from '../device-cookie.ts';

// In cookie mode the refresh token travels in the HttpOnly cookie, never in the body.
const refreshTokenOptional = <P extends { refresh_token: unknown }>(properties: P) => ({ ...properties, refresh_token: Type.Optional(Type.String()) });
const CookieModeLoginResponse = Type.Object(refreshTokenOptional(LoginResponse.properties));
const CookieModeTokenResponse = Type.Object(refreshTokenOptional(TokenResponse.properties));

const noStore = (reply: FastifyReply): FastifyReply => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

/**
 * Refresh request limits (LATCH_RATE_LIMITS=off lifts them): one token retried in a loop, and
 * one address flooding garbage. The per-address budget is wide: offices share one address.
 */
const REFRESH_PER_TOKEN = { burst: 10, perSecond: 0.5 };
const REFRESH_PER_ADDRESS = { burst: 600, perSecond: 50 };

/** A bucket key for a presented token that is not the token itself. */
const tokenKey = (token: string): string => sha256(token).toString('base64url').slice(0, 22);

export function authRoutes(app: App, latch: Latch, refreshCookie: RefreshCookie, options: { rateLimits: boolean } = { rateLimits: true }): void {
  const now = (): number => latch.clock.now();
  const refreshLimits = {
    byToken: new RateLimiter(REFRESH_PER_TOKEN, options.rateLimits, now),
    byAddress: new RateLimiter(REFRESH_PER_ADDRESS, options.rateLimits, now),
  };
  app.post(
    '/v1/login',
    {
      schema: {
        summary: 'Log in with a username and password',
        body: Type.Object(
          {
            // any string may be tried: a malformed username fails like an unknown one, after the same hash
            username: Type.String({ minLength: 1, maxLength: 256 }),
            password: Type.String({ minLength: 1, maxLength: 1024 }),
            device: Type.Optional(Type.String({ maxLength: 100, description: 'a name for this device, shown in the sessions list' })),
            device_token: Type.Optional(Type.String({ maxLength: 200, description: 'the device_token of an earlier login (non-browser clients; browsers send the cookie)' })),
            cookie: Type.Optional(Type.Boolean({ description: 'browser mode: the refresh token is set as an HttpOnly cookie and left out of the body' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: CookieModeLoginResponse },
      },
      config: { errors: ['invalid_request', 'origin_not_allowed', 'invalid_credentials', 'account_locked', 'too_many_attempts', 'overloaded'] },
    },
    async (request, reply) => {
      const { username, password, device, cookie } = request.body;
      // a page of another site has no use for a cookie it cannot spend; curl sends no Origin
      if (cookie) refreshCookie.assertSameOrigin(request, { allowMissing: true });
      const deviceToken = request.body.device_token ?? request.cookies[DEVICE_COOKIE] ?? null;
      const tokens = await latch.login({ username, password, device: device ?? null, deviceToken }, requestContext(request));
      setDeviceCookie(request, reply, tokens.device_token);
      if (!cookie) return noStore(reply).send(tokens);
      // a browser holds both secrets as HttpOnly cookies: neither reaches script
      const { device_token: _device, ...rest } = refreshCookie.moveToCookie(request, reply, tokens);
      return noStore(reply).send(rest);
    },
  );

  app.post(
    '/v1/refresh',
    {
      schema: {
        summary: 'Exchange a refresh token for new tokens (the refresh token rotates); in cookie mode it is read from, and rotated in, the cookie',
        body: Type.Optional(
          Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) }, { additionalProperties: false }),
        ),
        response: { 200: CookieModeTokenResponse },
      },
      config: { errors: ['invalid_request', 'origin_not_allowed', 'invalid_grant', 'refresh_token_reused', 'rate_limited'] },
      // cookie mode sends no body at all
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request, reply) => {
      refreshLimits.byAddress.check(ipBucket(request.ip));
      const ctx = requestContext(request);
      const fromBody = request.body?.refresh_token;
      if (fromBody !== undefined) {
        refreshLimits.byToken.check(tokenKey(fromBody));
        return noStore(reply).send(await latch.refresh(fromBody, ctx));
      }
      const fromCookie = refreshCookie.read(request);
      if (fromCookie === null) throw new LatchError('invalid_request', { detail: 'send refresh_token in the body, or the refresh cookie of a cookie-mode login' });
      refreshLimits.byToken.check(tokenKey(fromCookie));
      refreshCookie.assertSameOrigin(request);
      const tokens = await latch.refresh(fromCookie, ctx).catch((err: unknown) => {
        // a dead cookie is of no further use: drop it so the browser stops sending it
        if (isLatchError(err) && (err.code === 'invalid_grant' || err.code === 'refresh_token_reused')) refreshCookie.clear(request, reply);
        throw err;
      });
      return noStore(reply).send(refreshCookie.moveToCookie(request, reply, tokens));
    },
  );

  app.post(
    '/v1/logout',
    {
      schema: {
        summary: 'End this session, every other one, or all of them (authenticated by the bearer token, or in cookie mode by the refresh cookie alone)',
        body: Type.Optional(
          Type.Object({ scope: Type.Optional(Type.Union([Type.Literal('session'), Type.Literal('others'), Type.Literal('all')])) }, { additionalProperties: false }),
        ),
      },
      config: { auth: 'bearer', errors: ['invalid_request', 'origin_not_allowed', 'invalid_grant', ...BEARER_ERRORS] },
      // who is logging out is settled before the body is read: a valid bearer token, else the cookie
      onRequest: async (request) => {
        const bearer = authenticateBearer(latch, request);
        if (bearer.principal) {
          request.principal = bearer.principal;
          return;
        }
        if (refreshCookie.read(request) === null) throw bearer.error;
        refreshCookie.assertSameOrigin(request);
      },
      // no body at all means the default scope
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request, reply) => {
      const scope = request.body?.scope ?? 'session';
      const ctx = requestContext(request);
      const cookieToken = refreshCookie.read(request);
      if (request.principal) {
        await latch.logout(request.principal, scope, ctx);
        // the browser's cookie may belong to a newer session than the tab's token: it ends too
        if (scope === 'session' && cookieToken !== null && refreshCookie.isSameOrigin(request)) await latch.logoutWithRefreshToken(cookieToken, 'session', ctx);
      } else if (cookieToken !== null) {
        await logoutByCookie(latch, cookieToken, scope, ctx).catch((err: unknown) => {
          refreshCookie.clear(request, reply);
          throw err;
        });
      }
      // "others" keeps this session, and with it the cookie that refreshes it
      if (scope !== 'others') refreshCookie.clear(request, reply);
      return reply.code(204).send();
    },
  );
}

/** The bearer token's principal, or why there is none (a logout may still go on by cookie). */
function authenticateBearer(latch: Latch, request: FastifyRequest): { principal: Principal; error: null } | { principal: null; error: unknown } {
  const token = bearerToken(request);
  if (token === null) return { principal: null, error: new LatchError('invalid_token', { cause: 'no bearer token or refresh cookie' }) };
  try {
    return { principal: latch.authenticate(token), error: null };
  } catch (err) {
    return { principal: null, error: err };
  }
}

/**
 * Logout by the refresh cookie alone. A live session revokes at least its own row for
 * "session" and "all", so none revoked means the cookie was dead and nothing was ended.
 */
async function logoutByCookie(latch: Latch, cookieToken: string, scope: LogoutScope, ctx: RequestContext): Promise<void> {
  const revoked = await latch.logoutWithRefreshToken(cookieToken, scope, ctx);
  if (revoked === 0 && scope !== 'others') throw new LatchError('invalid_grant', { cause: 'logout with a dead refresh cookie' });
}
