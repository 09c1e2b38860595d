// `npm run bench -- protection`: what the account-protection controls cost. Login latency with
// failed-login throttling on against one raw argon2id verify; the answer times of an unknown
// user, a wrong password and a locked account (the three must be indistinguishable); how long
// a scheduled and an emergency key rotation take.
import { verify as argonVerify, hash as argonHash } from '@node-rs/argon2';
import { ARGON2_OPTIONS } from '../src/core/passwords.ts';
import { LatchError } from '../src/core/errors.ts';
import type { Part } from './core.ts';
import { openBenchLatch } from './fixture.ts';
import { fmtMs, fmtPct, mean, percentile } from './measure.ts';
import type { Section } from './report.ts';

const PASSWORD = 'correct horse battery staple';
const CTX = { ip: '192.0.2.10', userAgent: 'bench' };

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof LatchError)) throw err;
  }
  return performance.now() - t0;
}

const summary = (samples: number[]): string[] => [fmtMs(mean(samples)), fmtMs(percentile(samples, 50)), fmtMs(percentile(samples, 99))];

async function costs(progress: (line: string) => void): Promise<Section> {
  const bench = await openBenchLatch();
  try {
    const { latch } = bench;
    await latch.register({ username: 'bench-user', password: PASSWORD }, null);
    await latch.register({ username: 'bench-locked', password: PASSWORD }, null);
    await latch.admin.lockUser('bench-locked', { seconds: 3600 }, 'bench', null);
    const stored = await argonHash(PASSWORD, ARGON2_OPTIONS);
    // every attempt from its own address and username, so no throttle blocks the measurement
    let n = 0;
    const ctx = (): typeof CTX => ({ ...CTX, ip: `198.51.${Math.floor(n / 250) % 250}.${n++ % 250}` });

    const ROUNDS = 150;
    const raw: number[] = [];
    const login: number[] = [];
    const unknown: number[] = [];
    const wrong: number[] = [];
    const locked: number[] = [];
    progress(`  login, ${ROUNDS} rounds of 5 interleaved attempts`);
    for (let i = 0; i < 5; i += 1) await latch.login({ username: 'bench-user', password: PASSWORD }, ctx()); // warm-up
    for (let i = 0; i < ROUNDS; i += 1) {
      raw.push(await timed(() => argonVerify(stored, PASSWORD)));
      login.push(await timed(() => latch.login({ username: 'bench-user', password: PASSWORD }, ctx())));
      unknown.push(await timed(() => latch.login({ username: `nobody-${i}`, password: 'wrong password' }, ctx())));
      wrong.push(await timed(() => latch.login({ username: 'bench-user', password: `wrong password ${i}` }, ctx())));
      locked.push(await timed(() => latch.login({ username: 'bench-locked', password: PASSWORD }, ctx())));
      // keep the username counters below their thresholds, so every attempt reaches the hash
      await latch.login({ username: 'bench-user', password: PASSWORD }, ctx());
      await latch.store.clearThrottle('user:bench-locked');
    }
    const base = mean(raw);
    const overhead = mean(login) / base - 1;
    const vs = (s: number[]): string => fmtPct(percentile(s, 50) / percentile(wrong, 50) - 1);

    progress('  key rotation');
    const scheduled: number[] = [];
    const emergency: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      const t0 = performance.now();
      await latch.admin.rotateKeys({ emergency: true, revokeSessions: false }, 'bench');
      emergency.push(performance.now() - t0);
    }
    for (let i = 0; i < 10; i += 1) {
      const t0 = performance.now();
      await latch.admin.rotateKeys({ emergency: false, revokeSessions: false }, 'bench');
      scheduled.push(performance.now() - t0);
      await latch.admin.rotateKeys({ emergency: true, revokeSessions: false }, 'bench'); // clears the pending next key
    }

    return {
      title: 'Account protection: what each control costs',
      method: [
        `Sequential calls on one Latch (SQLite, default settings: argon2id m=19456 KiB t=2 p=1, throttling on), ${ROUNDS} interleaved rounds.`,
        'A successful login = throttle check (store reads) + one argon2id verify + session insert + audit row + token signing + device token.',
        'Refused logins: unknown user (dummy hash), wrong password, and a locked account seen from an unknown device (each also counts a failure).',
      ],
      tables: [
        {
          columns: ['operation', 'mean', 'p50', 'p99', 'vs baseline'],
          rows: [
            ['raw argon2id verify (baseline)', ...summary(raw), '—'],
            ['login with throttling on', ...summary(login), `${fmtPct(overhead)} (goal ≤ +10%: ${overhead <= 0.1 ? 'met' : 'NOT met'})`],
          ],
        },
        {
          columns: ['refused login', 'mean', 'p50', 'p99', 'p50 vs wrong password'],
          rows: [
            ['wrong password', ...summary(wrong), '—'],
            ['unknown user', ...summary(unknown), vs(unknown)],
            ['locked account (unknown device)', ...summary(locked), vs(locked)],
          ],
        },
        {
          columns: ['key rotation', 'mean', 'p50', 'max'],
          rows: [
            ['scheduled (publish the next key)', fmtMs(mean(scheduled)), fmtMs(percentile(scheduled, 50)), fmtMs(Math.max(...scheduled))],
            ['emergency (new key + disable old + log row)', fmtMs(mean(emergency)), fmtMs(percentile(emergency, 50)), fmtMs(Math.max(...emergency))],
          ],
        },
      ],
      notes: [
        'The three refusals cost one argon2id verify each and differ by store work only; a difference within a few percent is noise next to network jitter.',
        'Rotation time is the store work on this node; other nodes apply a key row within the propagation bound (see the cluster suite).',
      ],
    };
  } finally {
    await bench.close();
  }
}

export const protectionParts: Part[] = [{ name: 'costs', summary: 'login with throttling vs raw hash, refused-login timing, rotation time', run: costs }];
