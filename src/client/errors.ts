// The one error the SDK throws: the server's stable problem code, or network_error when the
// server could not be reached. Switch on `code`; the message is for people.

/** Codes the server documents (docs/errors.md), plus the SDK's own network_error and not_logged_in. */
export type ClientErrorCode =
  | 'network_error'
  | 'not_logged_in'
  | 'invalid_request'
  | 'invalid_token'
  | 'invalid_credentials'
  | 'invalid_grant'
  | 'refresh_token_reused'
  | 'signup_closed'
  | 'origin_not_allowed'
  | 'not_found'
  | 'username_taken'
  | 'account_locked'
  | 'too_many_attempts'
  | 'overloaded'
  // a code this SDK version does not know yet still reaches the caller
  | (string & {});

export class LatchClientError extends Error {
  readonly code: ClientErrorCode;
  /** HTTP status; 0 when no answer arrived */
  readonly status: number;
  /** seconds to wait before trying again (429, 503) */
  readonly retryAfter: number | null;
  /** ISO time an account is locked until (423) */
  readonly lockedUntil: string | null;

  constructor(code: ClientErrorCode, status: number, message: string, extra: { retryAfter?: number | null; lockedUntil?: string | null; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'LatchClientError';
    this.code = code;
    this.status = status;
    this.retryAfter = extra.retryAfter ?? null;
    this.lockedUntil = extra.lockedUntil ?? null;
  }
}

/** Reads an RFC 9457 problem document; a body that is not one still yields an error with the status. */
export async function problemFrom(res: Response): Promise<LatchClientError> {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = await res.json();
    if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
  } catch {
    // not JSON: the status alone will have to do
  }
  const header = Number(res.headers.get('retry-after'));
  const retryAfter = typeof body.retry_after === 'number' ? body.retry_after : header > 0 ? header : null;
  const code = typeof body.code === 'string' ? body.code : res.status === 404 ? 'not_found' : `http_${res.status}`;
  const message = typeof body.detail === 'string' ? body.detail : typeof body.title === 'string' ? body.title : `HTTP ${res.status}`;
  return new LatchClientError(code, res.status, message, { retryAfter, lockedUntil: typeof body.locked_until === 'string' ? body.locked_until : null });
}
