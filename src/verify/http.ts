// The verifier's calls to the issuer: RFC 8414 discovery, the JWKS, and the revocation feed's
// snapshot pages, each with a timeout and a strict reading of the answer.

export type FetchFunction = typeof globalThis.fetch;

/** Each call to the issuer gives up after this long; the caller retries on its own schedule. */
export const REQUEST_TIMEOUT_MS = 5_000;

export class IssuerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IssuerError';
  }
}

export interface IssuerMetadata {
  jwksUri: string;
  revocationsEndpoint: string;
  streamEndpoint: string;
  /** latch_access_token_max_lifetime, seconds, when the issuer publishes it */
  maxLifetimeS: number | undefined;
  /** latch_staleness_budget, seconds, when the issuer publishes it */
  stalenessBudgetS: number | undefined;
}

export interface FeedEvent {
  seq: number;
  kind: 'session' | 'key';
  id: string;
  /** NumericDate seconds; absent for keys */
  expires_at?: number;
}

export interface FeedPage {
  log_id: string;
  events: FeedEvent[];
  last_seq: number;
  more: boolean;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
const isSeq = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function httpUrl(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new IssuerError(`the issuer metadata has no ${name}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new IssuerError(`the issuer metadata's ${name} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new IssuerError(`the issuer metadata's ${name} is not an http(s) URL`);
  return url.href;
}

/** RFC 8414 §3: the well-known segment goes between the host and the issuer's path. */
export function metadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

/** One feed event as the server sends it, checked field by field. */
export function parseFeedEvent(value: unknown): FeedEvent {
  if (!isObject(value) || !isSeq(value.seq) || (value.kind !== 'session' && value.kind !== 'key') || typeof value.id !== 'string' || value.id.length === 0) {
    throw new IssuerError('a revocation event is malformed');
  }
  if (value.kind === 'session' && !isSeq(value.expires_at)) throw new IssuerError('a session revocation has no expires_at');
  return value.kind === 'session' ? { seq: value.seq, kind: 'session', id: value.id, expires_at: value.expires_at as number } : { seq: value.seq, kind: 'key', id: value.id };
}

export class IssuerClient {
  constructor(
    private readonly fetchFn: FetchFunction,
    private readonly authorization: string,
  ) {}

  async getJson(url: string, options: { authenticated: boolean }): Promise<{ body: unknown; headers: Headers }> {
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        headers: { accept: 'application/json', ...(options.authenticated ? { authorization: this.authorization } : {}) },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new IssuerError(`GET ${url} failed`, { cause: err });
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new IssuerError(`GET ${url} answered ${res.status}${res.status === 401 ? ' (is the client id and secret right?)' : ''}`);
    }
    try {
      return { body: await res.json(), headers: res.headers };
    } catch (err) {
      throw new IssuerError(`GET ${url} did not answer JSON`, { cause: err });
    }
  }

  async metadata(issuer: string): Promise<IssuerMetadata> {
    const { body } = await this.getJson(metadataUrl(issuer), { authenticated: false });
    if (!isObject(body)) throw new IssuerError('the issuer metadata is not a JSON object');
    // RFC 8414 §3.3: metadata naming another issuer must not be used
    if (body.issuer !== issuer) throw new IssuerError(`the metadata's issuer ${JSON.stringify(body.issuer)} is not ${JSON.stringify(issuer)}`);
    const positive = (v: unknown): number | undefined => (Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : undefined);
    return {
      jwksUri: httpUrl(body.jwks_uri, 'jwks_uri'),
      revocationsEndpoint: httpUrl(body.latch_revocations_endpoint, 'latch_revocations_endpoint'),
      streamEndpoint: httpUrl(body.latch_revocations_stream_endpoint, 'latch_revocations_stream_endpoint'),
      maxLifetimeS: positive(body.latch_access_token_max_lifetime),
      stalenessBudgetS: positive(body.latch_staleness_budget),
    };
  }

  async feedPage(endpoint: string, after: number): Promise<FeedPage> {
    const url = new URL(endpoint);
    url.searchParams.set('after', String(after));
    const { body } = await this.getJson(url.href, { authenticated: true });
    if (!isObject(body) || typeof body.log_id !== 'string' || body.log_id.length === 0 || !isSeq(body.last_seq) || typeof body.more !== 'boolean' || !Array.isArray(body.events)) {
      throw new IssuerError('the revocation feed answered an unexpected document');
    }
    return { log_id: body.log_id, last_seq: body.last_seq, more: body.more, events: body.events.map(parseFeedEvent) };
  }
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded. */
export function basicAuthorization(id: string, secret: string): string {
  const encode = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}

/** max-age of a Cache-Control header, seconds, or undefined. */
export function maxAge(headers: Headers): number | undefined {
  const match = /(?:^|,)\s*max-age=(\d+)/i.exec(headers.get('cache-control') ?? '');
  return match ? Number(match[1]) : undefined;
}
