// `latch serve`: start the server, stop gracefully on SIGTERM/SIGINT (stop accepting, drain
// in-flight requests, stop polling, close the store).
import type { Config } from '../config.ts';
import { openLatch } from '../compose.ts';
import { buildApp } from '../server/app.ts';
import { PrometheusMetrics } from '../server/metrics.ts';

export async function serve(config: Config, version: string): Promise<number> {
  const log = (message: string): void => void process.stderr.write(`latch: ${message}\n`);
  const metrics = new PrometheusMetrics();
  const opened = await openLatch(config, { metrics, onError: (err) => log(`background error: ${(err as Error).message ?? String(err)}`) });
  const app = await buildApp(opened.latch, {
    logLevel: config.logLevel,
    trustProxy: config.trustProxy,
    corsOrigins: config.corsOrigins,
    rateLimits: config.rateLimits,
    version,
    metrics,
    busConnected: opened.busConnected,
  });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await opened.close();
    throw err;
  }
  const address = app.server.address();
  const where = typeof address === 'object' && address ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : String(address);
  log(`listening on ${where} (issuer ${config.issuer}, store ${config.databaseUrl ? 'postgres' : `sqlite in ${config.dataDir}`})`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: draining and shutting down`);
      const force = setTimeout(() => {
        log('shutdown took longer than 10 s; closing every connection and exiting');
        app.server.closeAllConnections();
        resolve(1);
        // whatever still holds the event loop open must not keep a stopping node alive
        setTimeout(() => process.exit(1), 1_000).unref();
      }, 10_000);
      force.unref();
      // server.close() drops idle keep-alive connections once, when it starts; a connection
      // that finishes its last request during the drain goes idle later and must be dropped too
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      void (async () => {
        try {
          await app.close();
          await opened.close();
          resolve(0);
        } catch (err) {
          log(`shutdown failed: ${(err as Error).message ?? String(err)}`);
          resolve(1);
        } finally {
          clearInterval(sweep);
          clearTimeout(force);
        }
      })();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
