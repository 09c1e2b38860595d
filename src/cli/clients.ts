// `latch clients add | list | remove`: credentials for resource servers (the revocation feed,
// introspection). The secret is printed once, here, and stored only as a hash.
import type { Config } from '../config.ts';
import { openLatch } from '../compose.ts';
import { ClientRegistry } from '../core/clients.ts';

const out = (line: string): void => void process.stdout.write(`${line}\n`);

async function withRegistry<T>(config: Config, fn: (registry: ClientRegistry) => Promise<T>): Promise<T> {
  const opened = await openLatch(config, { serve: false });
  try {
    return await fn(new ClientRegistry(opened.latch.store, opened.latch.clock));
  } finally {
    await opened.close();
  }
}

/** `usage` reports a mistake in the command line (the caller prints the usage text and exits 2). */
export async function clients(config: Config, args: string[], flags: { json: boolean }, usage: (message: string) => never): Promise<number> {
  const [sub, name, ...extra] = args;
  if (extra.length > 0) usage(`unexpected argument ${JSON.stringify(extra[0])}`);
  switch (sub) {
    case 'add': {
      if (!name) usage('clients add needs a name');
      const result = await withRegistry(config, (registry) => registry.add(name));
      if (result.kind === 'name_taken') {
        process.stderr.write(`latch: a client named ${name} exists already (remove it first to issue a new secret)\n`);
        return 1;
      }
      const { id, secret } = result.credential;
      if (flags.json) out(JSON.stringify({ id, secret }));
      else {
        out(`id: ${id}`);
        out(`secret: ${secret}`);
        process.stderr.write('latch: the secret is shown only this once; Latch keeps only its hash\n');
      }
      return 0;
    }
    case 'list': {
      if (name) usage('clients list takes no argument');
      const list = await withRegistry(config, (registry) => registry.list());
      if (flags.json) out(JSON.stringify(list.map((c) => ({ id: c.id, name: c.name, created_at: new Date(c.createdAt).toISOString() }))));
      else for (const c of list) out(`${c.name}\t${c.id}\t${new Date(c.createdAt).toISOString()}`);
      return 0;
    }
    case 'remove': {
      if (!name) usage('clients remove needs a name');
      const removed = await withRegistry(config, (registry) => registry.remove(name));
      if (!removed) {
        process.stderr.write(`latch: no client named ${name}\n`);
        return 1;
      }
      out(`removed ${name}`);
      return 0;
    }
    default:
      return usage(`unknown clients command ${JSON.stringify(sub ?? '')}`);
  }
}
