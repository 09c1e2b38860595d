// Opening the revocation event stream. By default over node:http(s) on a connection of its own:
// aborting it closes that socket and nothing else (an aborted streaming fetch makes Node's
// fetch open a spare connection, which then holds up the issuer's graceful shutdown). With an
// injected fetch (tests, proxies), over that fetch.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { FetchFunction } from './http.ts';

export interface OpenedStream {
  status: number;
  contentType: string;
  /** decoded text as it arrives; throws when the connection breaks or is aborted */
  chunks: AsyncIterable<string>;
}

export function openStream(url: URL, headers: Record<string, string>, signal: AbortSignal, fetchFn: FetchFunction | null): Promise<OpenedStream> {
  return fetchFn ? overFetch(fetchFn, url, headers, signal) : overHttp(url, headers, signal);
}

function overHttp(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<OpenedStream> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    // agent: false: a connection that belongs to this stream alone and dies with it
    const req = request(url, { method: 'GET', headers, agent: false, signal });
    req.once('error', reject);
    req.once('response', (res: IncomingMessage) => {
      res.setEncoding('utf8');
      const type = res.headers['content-type'];
      resolve({ status: res.statusCode ?? 0, contentType: typeof type === 'string' ? type : '', chunks: res as AsyncIterable<string> });
    });
    req.end();
  });
}

async function overFetch(fetchFn: FetchFunction, url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<OpenedStream> {
  const res = await fetchFn(url.href, { headers, signal });
  const body = res.body;
  async function* chunks(): AsyncGenerator<string> {
    if (!body) return;
    const reader = body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield decoder.decode(value, { stream: true });
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', chunks: chunks() };
}
