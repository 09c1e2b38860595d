// Shared JSON Schemas (TypeBox): the one definition of each shape, for validation, response
// serialisation, types and the OpenAPI document.
import { Type } from 'typebox';
import { PASSWORD_MAX, PASSWORD_MIN } from '../core/username.ts';

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String(),
    detail: Type.Optional(Type.String()),
    retry_after: Type.Optional(Type.Integer()),
  },
  { additionalProperties: true, description: 'RFC 9457 problem document' },
);

/** Usernames are checked in full by the core (letters, digits, ._@+-, NFKC); the schema bounds size. */
export const Username = Type.String({ minLength: 1, maxLength: 256 });
export const Password = Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX });

export const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
  refresh_token: Type.String(),
  refresh_expires_in: Type.Integer(),
  session_id: Type.String(),
});

export const User = Type.Object({ id: Type.String(), username: Type.String() });

export const Session = Type.Object({
  id: Type.String(),
  device: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  last_seen_at: Type.String({ format: 'date-time' }),
  current: Type.Boolean(),
});

export const LoginResponse = Type.Object({
  ...TokenResponse.properties,
  device_token: Type.Optional(Type.String({ description: 'send it back as device_token on later logins (absent in cookie mode: browsers get it as an HttpOnly cookie)' })),
});
