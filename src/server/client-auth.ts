// Client authentication (RFC 6749 §2.3): HTTP Basic whose id and secret are form-urlencoded
// before base64 (§2.3.1), or client_id/client_secret in a form body (client_secret_post), or a
// bare client_id for a public client. Callers turn a failure into their own error format.
import type { FastifyRequest } from 'fastify';
import type { ClientRegistry } from '../core/clients.ts';
import type { ClientRecord } from '../store/port.ts';

/** The challenge a 401 from a route that takes a client credential carries. */
export const BASIC_CHALLENGE = 'Basic realm="latch"';

export type ClientAuthentication =
  /** no credential at all */
  | { method: 'none'; clientId: null }
  /** a bare client_id in the body: a public client naming itself */
  | { method: 'none'; clientId: string }
  | { method: 'client_secret_basic' | 'client_secret_post'; client: ClientRecord };

export type ClientAuthFailure =
  /** the credential cannot be read (bad base64, no colon, bad percent-encoding) */
  | 'malformed'
  /** two methods at once, which RFC 6749 §2.3 forbids */
  | 'multiple_methods'
  /** a readable credential whose id or secret is wrong */
  | 'invalid';

export class ClientAuthError extends Error {
  constructor(readonly reason: ClientAuthFailure) {
    super(reason === 'malformed' ? 'the client credential is malformed' : reason === 'multiple_methods' ? 'use one client authentication method, not two' : 'the client credential is invalid');
    this.name = 'ClientAuthError';
  }
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** A credential is two short strings; anything longer is not one (and is not worth decoding). */
const MAX_BASIC = 1024;

/** application/x-www-form-urlencoded decoding of one value: '+' is a space, then percent-decoding. */
function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

/** The id and secret of an `Authorization: Basic` header, null when there is none; throws when it is unreadable. */
export function parseBasic(header: string | undefined): { id: string; secret: string } | null {
  if (header === undefined) return null;
  const space = header.indexOf(' ');
  const scheme = space < 0 ? header : header.slice(0, space);
  if (scheme.toLowerCase() !== 'basic') return null;
  const encoded = header.slice(space + 1).trim();
  if (space < 0 || encoded.length === 0 || encoded.length > MAX_BASIC || !BASE64.test(encoded)) throw new ClientAuthError('malformed');
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) throw new ClientAuthError('malformed');
  const id = formDecode(decoded.slice(0, colon));
  const secret = formDecode(decoded.slice(colon + 1));
  if (id === null || secret === null || id.length === 0) throw new ClientAuthError('malformed');
  return { id, secret };
}

/** What a form body may say about the client (already checked to hold single string values). */
export interface ClientFields {
  client_id?: string | undefined;
  client_secret?: string | undefined;
}

/**
 * Reads and checks the client's credential. `fields` is the form body for endpoints that accept
 * client_secret_post; leave it out where only Basic is allowed (the revocation feed).
 */
export async function authenticateClient(request: FastifyRequest, registry: ClientRegistry, fields?: ClientFields): Promise<ClientAuthentication> {
  const header = request.headers.authorization;
  const basic = parseBasic(typeof header === 'string' ? header : undefined);
  const postedId = fields?.client_id;
  const postedSecret = fields?.client_secret;
  if (basic) {
    if (postedSecret !== undefined) throw new ClientAuthError('multiple_methods');
    // a client_id next to Basic is redundant, and wrong when it names someone else
    if (postedId !== undefined && postedId !== basic.id) throw new ClientAuthError('multiple_methods');
    const client = await registry.verify(basic.id, basic.secret);
    if (!client) throw new ClientAuthError('invalid');
    return { method: 'client_secret_basic', client };
  }
  if (postedSecret !== undefined) {
    if (postedId === undefined || postedId.length === 0) throw new ClientAuthError('malformed');
    const client = await registry.verify(postedId, postedSecret);
    if (!client) throw new ClientAuthError('invalid');
    return { method: 'client_secret_post', client };
  }
  if (postedId !== undefined && postedId.length > 0) return { method: 'none', clientId: postedId };
  return { method: 'none', clientId: null };
}
