// A user's own sessions: list them, end any one.
import { Type } from 'typebox';
import type { Latch } from '../../core/latch.ts';
import type { App } from '../app-types.ts';
import { BEARER_ERRORS, principalOf, requestContext, requireBearer } from '../context.ts';
import { Session } from '../schemas.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export function sessionRoutes(app: App, latch: Latch): void {
  app.get(
    '/v1/sessions',
    {
      schema: { summary: "The caller's live sessions", response: { 200: Type.Object({ sessions: Type.Array(Session) }) } },
      config: { auth: 'bearer', errors: BEARER_ERRORS },
      onRequest: requireBearer(latch),
    },
    async (request) => {
      const sessions = await latch.listSessions(principalOf(request));
      return {
        sessions: sessions.map((s) => ({
          id: s.id,
          device: s.device,
          ip: s.ip,
          user_agent: s.userAgent,
          created_at: iso(s.createdAt),
          last_seen_at: iso(s.lastSeenAt),
          current: s.current,
        })),
      };
    },
  );

  app.delete(
    '/v1/sessions/:id',
    {
      schema: { summary: 'End one of your sessions', params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }) },
      config: { auth: 'bearer', errors: ['not_found', ...BEARER_ERRORS] },
      onRequest: requireBearer(latch),
    },
    async (request, reply) => {
      await latch.revokeOwnSession(principalOf(request), request.params.id, requestContext(request));
      return reply.code(204).send();
    },
  );
}
