// Password hashing: argon2id with OWASP's parameters, behind a bounded queue so a burst of
// logins gets 503 overloaded instead of drowning the event loop and the thread pool.
import { hash, verify, type Algorithm, type Options } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';
import { LatchError } from './errors.ts';

/** OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB (19 MiB), t=2, p=1. */
export const ARGON2_OPTIONS: Options = {
  algorithm: 2 as Algorithm, // Argon2id (a const enum in the binding's types)
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
};

export interface PasswordHasherOptions {
  /** hashes running at once */
  concurrency: number;
  /** hashes allowed to wait for a slot; past it, overloaded */
  maxQueue: number;
}

export class PasswordHasher {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private dummy: string | null = null;

  constructor(private readonly options: PasswordHasherOptions) {}

  /** Hashes currently running plus waiting, for metrics. */
  get depth(): number {
    return this.active + this.waiting.length;
  }

  async hash(password: string): Promise<string> {
    return this.run(() => hash(password, ARGON2_OPTIONS));
  }

  /**
   * Verifies `password` against `stored`; with `stored` null (unknown user) it verifies
   * against a dummy hash of the same parameters, so both cost the same and answer false.
   */
  async verify(stored: string | null, password: string): Promise<boolean> {
    const target = stored ?? (await this.dummyHash());
    const ok = await this.run(async () => {
      try {
        return await verify(target, password);
      } catch {
        return false; // a malformed stored hash never authenticates
      }
    });
    return stored !== null && ok;
  }

  private async dummyHash(): Promise<string> {
    this.dummy ??= await hash(randomBytes(32).toString('base64url'), ARGON2_OPTIONS);
    return this.dummy;
  }

  /** Computes the dummy hash ahead of the first login. */
  async warmUp(): Promise<void> {
    await this.dummyHash();
  }

  private async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.options.concurrency) {
      if (this.waiting.length >= this.options.maxQueue) {
        throw new LatchError('overloaded', { retryAfter: 1, detail: 'Too many sign-ins are being processed; try again in a second' });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active += 1;
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes to the next waiter
      else this.active -= 1;
    }
  }
}
