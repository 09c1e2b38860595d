// The one registry of error codes: code, HTTP status and public title live together.
// Codes are API: never rename one, never reuse a retired one.

export const ERRORS = {
  invalid_request: { status: 400, title: 'The request is malformed or a field is invalid' },
  invalid_token: { status: 401, title: 'The access token is missing, invalid, expired or revoked' },
  invalid_credentials: { status: 401, title: 'The username or password is wrong' },
  invalid_client: { status: 401, title: 'The client credential is missing or invalid' },
  invalid_grant: { status: 401, title: 'The refresh token is invalid, expired or revoked' },
  refresh_token_reused: { status: 401, title: 'The refresh token was already used; the session is now revoked' },
  signup_closed: { status: 403, title: 'Sign-up is closed on this server' },
  origin_not_allowed: { status: 403, title: 'The request comes from an origin that may not use the session cookie' },
  forbidden: { status: 403, title: 'This needs an administrator' },
  not_found: { status: 404, title: 'No such resource' },
  username_taken: { status: 409, title: 'That username is taken' },
  rotation_in_progress: { status: 409, title: 'Another key rotation is in progress; try again shortly' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  uri_too_long: { status: 414, title: 'The request URI is too long' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  account_locked: { status: 423, title: 'The account is locked' },
  too_many_attempts: { status: 429, title: 'Too many failed attempts; try again later' },
  rate_limited: { status: 429, title: 'Too many requests; slow down' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  server_error: { status: 500, title: 'Internal server error' },
  overloaded: { status: 503, title: 'The server is busy; try again shortly' },
  revocation_state_stale: { status: 503, title: 'The revocation state could not be confirmed recently; tokens are refused until it is' },
  store_unavailable: { status: 503, title: 'The store is unavailable; try again shortly' },
  not_ready: { status: 503, title: 'The server is not ready' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface LatchErrorOptions {
  /** Public, safe explanation. Never a token, a secret or a library message. */
  detail?: string;
  /** Seconds, sent as the Retry-After header and `retry_after` member. */
  retryAfter?: number;
  /** Extra public members of the problem document. */
  extra?: Record<string, unknown>;
  /** Private cause, for the log only. */
  cause?: unknown;
}

/** A domain error with a stable code. Thrown for untrusted input and expected failures. */
export class LatchError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;
  readonly retryAfter: number | undefined;
  readonly extra: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, options: LatchErrorOptions = {}) {
    super(options.detail ?? ERRORS[code].title, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LatchError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.detail = options.detail;
    this.retryAfter = options.retryAfter;
    this.extra = options.extra;
  }
}

export function isLatchError(value: unknown): value is LatchError {
  return value instanceof LatchError;
}

/** Misconfiguration found at boot: the process must stop with this message. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A store that cannot be reached (connection refused, timeout): maps to 503 store_unavailable. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('store unavailable', { cause });
    this.name = 'StoreUnavailableError';
  }
}
