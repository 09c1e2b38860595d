// GET / : the web UI. web/ is bundled with esbuild in memory when the server starts (no build
// step after npm install, nothing from a CDN); assets get content-hashed, immutable URLs.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { App } from '../app-types.ts';

const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));

/** The page may load only its own script and style and talk only to this server. */
export const HTML_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join('; ');

interface Asset {
  body: Buffer;
  type: string;
}

export interface WebBundle {
  html: Buffer;
  /** by URL path */
  assets: Map<string, Asset>;
}

let bundle: Promise<WebBundle> | null = null;

/** Built once per process: every app in a test run shares it. */
export function webBundle(): Promise<WebBundle> {
  bundle ??= compile().catch((err: unknown) => {
    bundle = null;
    throw err;
  });
  return bundle;
}

async function compile(): Promise<WebBundle> {
  const result = await build({
    entryPoints: [join(WEB_DIR, 'main.ts'), join(WEB_DIR, 'style.css')],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    write: false,
    outdir: '/assets',
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
  });
  const assets = new Map<string, Asset>();
  let html = await readFile(join(WEB_DIR, 'index.html'), 'utf8');
  for (const file of result.outputFiles) {
    const name = file.path.slice(file.path.lastIndexOf('/') + 1);
    const dot = name.lastIndexOf('.');
    const ext = name.slice(dot + 1);
    const body = Buffer.from(file.contents);
    const hashed = `/assets/${name.slice(0, dot)}.${createHash('sha256').update(body).digest('hex').slice(0, 12)}.${ext}`;
    const integrity = `sha384-${createHash('sha384').update(body).digest('base64')}`;
    const attribute = ext === 'js' ? 'src' : 'href';
    const placeholder = `${attribute}="/assets/${name}"`;
    if (!html.includes(placeholder)) throw new Error(`web/index.html does not reference /assets/${name}`);
    html = html.replace(placeholder, `${attribute}="${hashed}" integrity="${integrity}"`);
    assets.set(hashed, { body, type: ext === 'js' ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8' });
  }
  assets.set('/favicon.svg', { body: await readFile(join(WEB_DIR, 'favicon.svg')), type: 'image/svg+xml' });
  return { html: Buffer.from(html), assets };
}

export async function webRoutes(app: App): Promise<void> {
  const { html, assets } = await webBundle();

  app.get('/', { config: { hidden: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      // always revalidate the page: it names the current assets
      .header('cache-control', 'no-cache')
      .header('content-security-policy', HTML_CSP)
      .header('x-frame-options', 'DENY')
      .header('cross-origin-opener-policy', 'same-origin')
      .header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=()')
      .send(html),
  );

  for (const [path, asset] of assets) {
    app.get(path, { config: { hidden: true } }, async (_request, reply) =>
      reply
        .type(asset.type)
        .header('cache-control', path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'public, max-age=86400')
        .header('cross-origin-resource-policy', 'same-origin')
        .send(asset.body),
    );
  }
}
