// `latch/verify`: accept Latch access tokens in any Node API, checked locally at full speed,
// with logged-out tokens refused within milliseconds. No runtime dependencies but node: built-ins;
// nothing here imports Latch's server, store or CLI.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticateRequest, expressMiddleware, fastifyHook, type ExpressRequestLike, type FastifyReplyLike, type FastifyRequestLike } from './adapters.ts';
import type { LatchClaims } from './token.ts';
import { LatchVerifier, type VerifierOptions, type VerifierStatus, type VerifyContext } from './verifier.ts';

export { VerifyError, isVerifyError, type VerifyErrorCode } from './errors.ts';
export { bearerToken, problemOf, refusalHeaders, sendRefusal } from './adapters.ts';
export type { ExpressRequestLike, FastifyReplyLike, FastifyRequestLike } from './adapters.ts';
export type { LatchClaims } from './token.ts';
export type { VerifierOptions, VerifierStatus, VerifyContext } from './verifier.ts';

export interface Verifier {
  /** Verifies an access token; rejects with a VerifyError whose `code` says why. */
  verify(token: string, context?: VerifyContext): Promise<LatchClaims>;
  /** The bearer token of a node:http IncomingMessage or a Fetch Request, verified. */
  authenticate(request: IncomingMessage | Request): Promise<LatchClaims>;
  /** A Fastify onRequest hook: sets request.auth, or answers 401 (503 when stale). */
  fastify(): (request: FastifyRequestLike, reply: FastifyReplyLike, done: (err?: Error) => void) => void;
  /** An Express (or connect) middleware: sets req.auth, or answers 401 (503 when stale). */
  express(): (req: ExpressRequestLike, res: ServerResponse, next: (err?: unknown) => void) => void;
  status(): VerifierStatus;
  /** Stops the stream and timers; later calls to verify reject with verifier_closed. */
  close(): Promise<void>;
}

/**
 * Discovers the issuer (RFC 8414), imports its keys, loads the live revocation log and opens
 * the event stream. Resolves once tokens can be checked; rejects with VerifyError
 * `issuer_unavailable` when the issuer cannot be reached within `startTimeoutSeconds`.
 */
export async function createVerifier(options: VerifierOptions): Promise<Verifier> {
  const core = new LatchVerifier(options);
  await core.start();
  const verifier: Verifier = {
    verify: (token, context) => core.verify(token, context),
    authenticate: (request) => authenticateRequest(core, request),
    fastify: () => fastifyHook(core),
    express: () => expressMiddleware(core),
    status: () => core.status(),
    close: () => core.close(),
  };
  return verifier;
}
