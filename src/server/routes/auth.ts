// Login, refresh and logout: where sessions begin, rotate and end.
import { Type } from 'typebox';
import type { Latch } from '../../core/latch.ts';
import type { App } from '../app-types.ts';
import { BEARER_ERRORS, principalOf, requestContext, requireBearer } from '../context.ts';
import { LoginResponse, TokenResponse } from '../schemas.ts';
import { DEVICE_COOKIE, setDeviceCookie } from '../device-cookie.ts';

export function authRoutes(app: App, latch: Latch): void {
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
          },
          { additionalProperties: false },
        ),
        response: { 200: LoginResponse },
      },
      config: { errors: ['invalid_request', 'invalid_credentials', 'account_locked', 'too_many_attempts', 'overloaded'] },
    },
    async (request, reply) => {
      const { username, password, device } = request.body;
      const deviceToken = request.body.device_token ?? request.cookies[DEVICE_COOKIE] ?? null;
      const tokens = await latch.login({ username, password, device: device ?? null, deviceToken }, requestContext(request));
      setDeviceCookie(request, reply, tokens.device_token);
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(tokens);
    },
  );

  app.post(
    '/v1/refresh',
    {
      schema: {
        summary: 'Exchange a refresh token for new tokens (the refresh token rotates)',
        body: Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
        response: { 200: TokenResponse },
      },
      config: { errors: ['invalid_request', 'invalid_grant', 'refresh_token_reused'] },
    },
    async (request, reply) => {
      const tokens = await latch.refresh(request.body.refresh_token, requestContext(request));
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(tokens);
    },
  );

  app.post(
    '/v1/logout',
    {
      schema: {
        summary: 'End this session, every other one, or all of them',
        body: Type.Optional(
          Type.Object({ scope: Type.Optional(Type.Union([Type.Literal('session'), Type.Literal('others'), Type.Literal('all')])) }, { additionalProperties: false }),
        ),
      },
      config: { auth: 'bearer', errors: ['invalid_request', ...BEARER_ERRORS] },
      // no body at all means the default scope
      preValidation: async (request) => {
        request.body ??= {};
      },
      onRequest: requireBearer(latch),
    },
    async (request, reply) => {
      await latch.logout(principalOf(request), request.body?.scope ?? 'session', requestContext(request));
      return reply.code(204).send();
    },
  );
}
