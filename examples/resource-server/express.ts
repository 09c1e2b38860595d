// An Express API protected by latch/verify: GET /api/hello needs a Latch access token and
// answers with its user id; GET /hello is the same route without auth. Run it against a local
// Latch (see README.md):
//
//   LATCH_CLIENT_ID=… LATCH_CLIENT_SECRET=… npx tsx examples/resource-server/express.ts
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { createVerifier, type LatchClaims } from 'latch/verify';
import { settings } from './settings.ts';

declare global {
  namespace Express {
    interface Request {
      /** set by verifier.express() on every route behind it */
      auth?: LatchClaims | null;
    }
  }
}

const config = settings();
const verifier = await createVerifier({ issuer: config.issuer, audience: config.audience, client: config.client });

const app = express();
const hello = (req: Request, res: Response): void => void res.json({ hello: req.auth?.sub ?? 'anonymous' });

app.get('/hello', hello);
app.get('/readyz', (_req, res) => {
  const status = verifier.status();
  res.status(status.fresh ? 200 : 503).json({ ready: status.fresh, revocation_seq: status.seq });
});

// every route under /api needs a live token: req.auth is set, or the request gets 401
app.use('/api', verifier.express());
app.get('/api/hello', hello);

const server = app.listen(config.port, config.host, () => {
  const { address, port } = server.address() as AddressInfo;
  process.stdout.write(`listening on http://${address}:${port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close(() => void verifier.close().then(() => process.exit(0)));
    // keep-alive connections would hold close() open
    server.closeAllConnections();
  });
}
