// Accounts: sign-up and "who am I".
import { Type } from 'typebox';
import type { Latch } from '../../core/latch.ts';
import type { App } from '../app-types.ts';
import { BEARER_ERRORS, principalOf, requestContext, requireBearer } from '../context.ts';
import { Password, User, Username } from '../schemas.ts';
import { RateLimiter } from '../rate-limit.ts';
import { ipBucket } from '../../core/throttle.ts';

/** Sign-ups per address: a burst of 30, then one every 2 s (LATCH_RATE_LIMITS=off lifts it). */
const SIGNUP_LIMIT = { burst: 30, perSecond: 0.5 };

export function userRoutes(app: App, latch: Latch, options: { rateLimits: boolean }): void {
  const signups = new RateLimiter(SIGNUP_LIMIT, options.rateLimits, () => latch.clock.now());
  app.post(
    '/v1/users',
    {
      schema: {
        summary: 'Create an account',
        body: Type.Object({ username: Username, password: Password }, { additionalProperties: false }),
        response: { 201: User },
      },
      config: { errors: ['invalid_request', 'username_taken', 'signup_closed', 'rate_limited', 'overloaded'] },
      preHandler: async (request) => signups.check(ipBucket(request.ip)),
    },
    async (request, reply) => {
      const user = await latch.register(request.body, requestContext(request));
      return reply.code(201).send(user);
    },
  );

  app.get(
    '/v1/me',
    {
      schema: {
        summary: 'The calling user and session',
        response: { 200: Type.Object({ id: Type.String(), username: Type.String(), session_id: Type.String() }) },
      },
      config: { auth: 'bearer', errors: BEARER_ERRORS },
      onRequest: requireBearer(latch),
    },
    async (request) => latch.me(principalOf(request)),
  );
}

export function passwordRoutes(app: App, latch: Latch): void {
  app.post(
    '/v1/password',
    {
      schema: {
        summary: 'Change your password: every other session ends, this one stays',
        body: Type.Object({ current_password: Type.String({ minLength: 1, maxLength: 1024 }), new_password: Password }, { additionalProperties: false }),
      },
      config: { auth: 'bearer', errors: [...BEARER_ERRORS, 'invalid_request', 'invalid_credentials', 'too_many_attempts', 'overloaded'] },
      onRequest: requireBearer(latch),
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await latch.admin.changePassword(principal.userId, principal.sessionId, request.body.current_password, request.body.new_password, requestContext(request));
      return reply.code(204).send();
    },
  );
}
