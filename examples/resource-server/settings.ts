// The examples' settings, from the environment: where Latch is and the credential from
// `npx latch clients add <name>`.

export interface ExampleSettings {
  issuer: string;
  audience: string;
  client: { id: string; secret: string };
  host: string;
  port: number;
}

export function settings(env: NodeJS.ProcessEnv = process.env): ExampleSettings {
  const id = env.LATCH_CLIENT_ID;
  const secret = env.LATCH_CLIENT_SECRET;
  if (!id || !secret) {
    process.stderr.write('set LATCH_CLIENT_ID and LATCH_CLIENT_SECRET to the output of `npx latch clients add my-api`\n');
    process.exit(2);
  }
  return {
    issuer: env.LATCH_ISSUER ?? 'http://127.0.0.1:8080',
    audience: env.LATCH_AUDIENCE ?? 'latch',
    client: { id, secret },
    host: env.HOST ?? '127.0.0.1',
    port: env.PORT === undefined ? 3000 : Number(env.PORT),
  };
}
