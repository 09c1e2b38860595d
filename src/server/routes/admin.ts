// The operator's API (admin users only, checked against the store on every call): locks,
// password resets, deletions, sessions, emergency key rotation, the audit log.
import { Type } from 'typebox';
import type { Latch } from '../../core/latch.ts';
import { LatchError } from '../../core/errors.ts';
import type { App } from '../app-types.ts';
import { ADMIN_ERRORS, principalOf, requestContext, requireAdmin } from '../context.ts';
import { Password, Session } from '../schemas.ts';

const UsernameParam = Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }) });
const iso = (ms: number): string => new Date(ms).toISOString();

export function adminRoutes(app: App, latch: Latch): void {
  const onRequest = requireAdmin(latch);
  const actor = (request: Parameters<typeof principalOf>[0]): string => principalOf(request).userId;

  app.post(
    '/v1/admin/users/:username/lock',
    {
      schema: {
        summary: 'Lock an account until a time: every session ends now, login and refresh are refused until then',
        params: UsernameParam,
        body: Type.Optional(
          Type.Object(
            {
              seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 366 * 86400 })),
              until: Type.Optional(Type.String({ format: 'date-time', maxLength: 40 })),
              reason: Type.Optional(Type.String({ maxLength: 200 })),
            },
            { additionalProperties: false },
          ),
        ),
        response: { 200: Type.Object({ username: Type.String(), locked_until: Type.String({ format: 'date-time' }) }) },
      },
      config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'not_found', 'invalid_request'] },
      onRequest,
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const body = request.body ?? {};
      if (body.seconds !== undefined && body.until !== undefined) throw new LatchError('invalid_request', { detail: 'give seconds or until, not both' });
      const until = body.until !== undefined ? Date.parse(body.until) : undefined;
      if (until !== undefined && Number.isNaN(until)) throw new LatchError('invalid_request', { detail: 'until must be an ISO 8601 date-time' });
      const locked = await latch.admin.lockUser(
        request.params.username,
        { ...(body.seconds !== undefined ? { seconds: body.seconds } : {}), ...(until !== undefined ? { until } : {}), ...(body.reason ? { reason: body.reason } : {}) },
        actor(request),
        requestContext(request),
      );
      return { username: locked.username, locked_until: iso(locked.lockedUntil) };
    },
  );

  app.post(
    '/v1/admin/users/:username/unlock',
    { schema: { summary: 'Lift a lock early', params: UsernameParam }, config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'not_found'] }, onRequest },
    async (request, reply) => {
      await latch.admin.unlockUser(request.params.username, actor(request), requestContext(request));
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/admin/users/:username/password',
    {
      schema: { summary: "Reset a user's password: every session of the user ends", params: UsernameParam, body: Type.Object({ new_password: Password }, { additionalProperties: false }) },
      config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'not_found', 'overloaded'] },
      onRequest,
    },
    async (request, reply) => {
      await latch.admin.resetPassword(request.params.username, request.body.new_password, actor(request), requestContext(request));
      return reply.code(204).send();
    },
  );

  app.delete(
    '/v1/admin/users/:username',
    { schema: { summary: 'Delete a user: everything of the user is revoked at once', params: UsernameParam }, config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'not_found'] }, onRequest },
    async (request, reply) => {
      await latch.admin.deleteUser(request.params.username, actor(request), requestContext(request));
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/admin/users/:username/sessions',
    {
      schema: { summary: "A user's live sessions", params: UsernameParam, response: { 200: Type.Object({ sessions: Type.Array(Session) }) } },
      config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'not_found'] },
      onRequest,
    },
    async (request) => {
      const { sessions } = await latch.admin.sessionsOf(request.params.username, latch.settings.sessionIdle * 1000);
      return {
        sessions: sessions.map((s) => ({ id: s.id, device: s.device, ip: s.ip, user_agent: s.userAgent, created_at: iso(s.createdAt), last_seen_at: iso(s.lastSeenAt), current: false })),
      };
    },
  );

  app.delete(
    '/v1/admin/sessions/:id',
    { schema: { summary: 'End any session', params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }) }, config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'not_found'] }, onRequest },
    async (request, reply) => {
      await latch.admin.revokeSession(request.params.id, actor(request), requestContext(request));
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/admin/keys/rotate',
    {
      schema: {
        summary: 'Rotate the signing key; emergency disables the old keys at once',
        body: Type.Optional(Type.Object({ emergency: Type.Optional(Type.Boolean()), revoke_sessions: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
        response: { 200: Type.Object({ kid: Type.String(), active_from: Type.String({ format: 'date-time' }), disabled: Type.Array(Type.String()) }) },
      },
      config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'rotation_in_progress'] },
      onRequest,
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const body = request.body ?? {};
      if (body.revoke_sessions && !body.emergency) throw new LatchError('invalid_request', { detail: 'revoke_sessions needs emergency: true' });
      const result = await latch.admin.rotateKeys({ emergency: body.emergency ?? false, revokeSessions: body.revoke_sessions ?? false }, actor(request));
      return { kid: result.kid, active_from: iso(result.activeFrom), disabled: result.disabled };
    },
  );

  app.get(
    '/v1/admin/audit',
    {
      schema: {
        summary: 'Security events, oldest first',
        querystring: Type.Object({ after: Type.Optional(Type.String({ pattern: '^\\d{1,15}$' })), limit: Type.Optional(Type.String({ pattern: '^\\d{1,4}$' })) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            events: Type.Array(
              Type.Object({
                id: Type.Integer(),
                at: Type.String({ format: 'date-time' }),
                type: Type.String(),
                actor: Type.Union([Type.String(), Type.Null()]),
                subject: Type.Union([Type.String(), Type.Null()]),
                ip: Type.Union([Type.String(), Type.Null()]),
                user_agent: Type.Union([Type.String(), Type.Null()]),
                detail: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
              }),
            ),
            last_id: Type.Integer(),
          }),
        },
      },
      config: { auth: 'bearer', errors: [...ADMIN_ERRORS, 'invalid_request'] },
      onRequest,
    },
    async (request) => {
      const after = Number(request.query.after ?? 0);
      const limit = Number(request.query.limit ?? 100);
      if (limit < 1 || limit > 1000) throw new LatchError('invalid_request', { detail: 'limit must be 1 to 1000' });
      const events = await latch.admin.audit(after, limit);
      return {
        events: events.map((e) => ({ id: e.id, at: iso(e.at), type: e.type, actor: e.actor, subject: e.subject, ip: e.ip, user_agent: e.userAgent, detail: e.detail })),
        last_id: events.length > 0 ? events[events.length - 1]!.id : after,
      };
    },
  );
}
