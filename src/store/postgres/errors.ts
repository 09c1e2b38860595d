// Tells a PostgreSQL that cannot be reached (or went away mid-request) from a query that failed
// on its own merits: the first becomes StoreUnavailableError (503, try again), the second
// propagates unchanged because it is a bug or a constraint the caller must see.
import { StoreUnavailableError } from '../../core/errors.ts';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** admin_shutdown, crash_shutdown, cannot_connect_now; class 08 is connection_exception. */
const SERVER_GONE_CODES = new Set(['57P01', '57P02', '57P03']);

// pg reports a socket that closed under it, a connect timeout, and a client it already gave up
// on with plain Errors that carry no code: their messages are the only signal.
const DRIVER_MESSAGES = ['Connection terminated', 'timeout exceeded when trying to connect', 'Client has encountered a connection error'];

export function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || SERVER_GONE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
  if (DRIVER_MESSAGES.some((m) => err.message.includes(m))) return true;
  // Node's happy-eyeballs connect reports every address it tried inside one AggregateError
  if (err instanceof AggregateError) return err.errors.some(isConnectionFailure);
  return false;
}

export function toStoreError(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err;
  return isConnectionFailure(err) ? new StoreUnavailableError(err) : err;
}
