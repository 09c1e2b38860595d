// The device cookie of OWASP's device-cookie throttling: proof that this browser has logged
// in to the account before, so it keeps its own failed-login allowance during an attack.
import type { FastifyReply, FastifyRequest } from 'fastify';

export const DEVICE_COOKIE = 'latch_device';
const ONE_YEAR_S = 365 * 86400;

/** Secure when the request came over https (directly or through a trusted proxy). */
export const isHttps = (request: FastifyRequest): boolean => request.protocol === 'https';

export function setDeviceCookie(request: FastifyRequest, reply: FastifyReply, token: string): void {
  reply.setCookie(DEVICE_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/v1/login', maxAge: ONE_YEAR_S, secure: isHttps(request) });
}
