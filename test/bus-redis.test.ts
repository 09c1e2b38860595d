// The Redis revocation bus against a real Redis (LATCH_TEST_REDIS_URL). Every test uses its own
// channel and connection names, because other test runs share the server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { parseSeq, reconnectDelay, RedisBus, type RedisBusOptions } from '../src/bus/redis/index.ts';

const url = process.env.LATCH_TEST_REDIS_URL;

test('parseSeq accepts only positive safe integers in plain decimal', () => {
  assert.equal(parseSeq('1'), 1);
  assert.equal(parseSeq('9007199254740991'), 9007199254740991);
  for (const garbage of ['', '0', '-1', '01', '1.5', '1e3', '0x10', ' 7', '7 ', '+7', 'abc', '9007199254740992']) {
    assert.equal(parseSeq(garbage), null, JSON.stringify(garbage));
  }
});

test('reconnectDelay grows linearly and is capped at 2 s', () => {
  assert.deepEqual([1, 2, 10, 20, 21, 1000].map(reconnectDelay), [100, 200, 1000, 2000, 2000, 2000]);
});

if (url === undefined) {
  if (process.env.CI === 'true') {
    test('Redis bus', () => assert.fail('LATCH_TEST_REDIS_URL must be set in CI'));
  } else {
    test('Redis bus', { skip: 'LATCH_TEST_REDIS_URL is not set' }, () => {});
  }
} else {
  describe('RedisBus', () => redisSuite(url));
}

function unique(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Resolves once `check` holds, polling every 10 ms; fails the test after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function redisSuite(redisUrl: string): void {
  const raws: Redis[] = [];
  const buses: RedisBus[] = [];

  function rawClient(): Redis {
    const raw = new Redis(redisUrl, { connectionName: unique('latch-test-raw'), maxRetriesPerRequest: 1 });
    raw.on('error', () => {});
    raws.push(raw);
    return raw;
  }

  async function openBus(options: Partial<RedisBusOptions> & { channel: string }): Promise<{ bus: RedisBus; seen: number[]; errors: unknown[]; statuses: boolean[] }> {
    const errors: unknown[] = [];
    const statuses: boolean[] = [];
    const bus = await RedisBus.open({
      url: redisUrl,
      connectionName: unique('latch-test-bus'),
      onError: (err) => errors.push(err),
      onStatus: (connected) => statuses.push(connected),
      ...options,
    });
    buses.push(bus);
    const seen: number[] = [];
    bus.subscribe((seq) => seen.push(seq));
    return { bus, seen, errors, statuses };
  }

  async function clientIds(raw: Redis, name: string): Promise<string[]> {
    const list = String(await raw.client('LIST'));
    return list
      .split('\n')
      .filter((line) => line.includes(` name=${name} `))
      .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1])
      .filter((id): id is string => id !== undefined);
  }

  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    for (const raw of raws) raw.disconnect();
  });

  test('a publish reaches the subscribers of the publishing bus and of another bus', async () => {
    const channel = unique('latch-test-fanout');
    const a = await openBus({ channel });
    const b = await openBus({ channel });
    assert.equal(a.bus.connected, true);
    assert.equal(b.bus.connected, true);
    assert.deepEqual(a.statuses, [true]);

    const started = Date.now();
    await a.bus.publish(7);
    await a.bus.publish(8);
    await b.bus.publish(9);
    await until('both buses to see 7, 8, 9', () => a.seen.length >= 3 && b.seen.length >= 3, 1_000);
    assert.ok(Date.now() - started < 1_000);
    assert.deepEqual(a.seen, [7, 8, 9]);
    assert.deepEqual(b.seen, [7, 8, 9]);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  });

  test('an unsubscribed listener hears nothing more', async () => {
    const channel = unique('latch-test-unsub');
    const { bus, seen } = await openBus({ channel });
    const other: number[] = [];
    const stop = bus.subscribe((seq) => other.push(seq));
    await bus.publish(1);
    await until('seq 1', () => seen.length >= 1 && other.length >= 1);
    stop();
    await bus.publish(2);
    await until('seq 2', () => seen.length >= 2);
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(other, [1]);
  });

  test('garbage messages on the channel are ignored', async () => {
    const channel = unique('latch-test-garbage');
    const { bus, seen, errors } = await openBus({ channel });
    const raw = rawClient();
    // One publishing connection, so Redis delivers these in order and 42 is last.
    for (const garbage of ['', 'hello', '0', '-5', '3.5', '1e3', '0x10', ' 12', '9007199254740993', '{"seq":5}']) {
      await raw.publish(channel, garbage);
    }
    await raw.publish(channel, '42');
    await until('seq 42', () => seen.length >= 1);
    assert.deepEqual(seen, [42]);
    assert.deepEqual(errors, []);
    assert.equal(bus.connected, true);
  });

  test('after its subscriber connection is killed server-side, the bus reconnects and hears later publishes', async () => {
    const channel = unique('latch-test-kill');
    const name = unique('latch-test-bus');
    const { bus, seen, statuses } = await openBus({ channel, connectionName: name });
    const raw = rawClient();
    await bus.publish(1);
    await until('seq 1', () => seen.length >= 1);

    const ids = await clientIds(raw, `${name}-sub`);
    assert.equal(ids.length, 1, 'exactly one subscriber connection with our name');
    await raw.client('KILL', 'ID', ids[0]!);
    await until('the bus to notice the kill', () => statuses.includes(false));
    await until('the bus to reconnect', () => bus.connected);
    assert.deepEqual(statuses, [true, false, true]);
    const after = await clientIds(raw, `${name}-sub`);
    assert.equal(after.length, 1);
    assert.notEqual(after[0], ids[0], 'a new subscriber connection');

    // From another client too, to show the channel itself is subscribed again.
    await raw.publish(channel, '2');
    await bus.publish(3);
    await until('seqs 2 and 3', () => seen.length >= 3);
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test('after its publisher connection is killed, publishes fail fast and work again once reconnected', async () => {
    const channel = unique('latch-test-kill-pub');
    const name = unique('latch-test-bus');
    const { bus, seen, statuses } = await openBus({ channel, connectionName: name });
    const raw = rawClient();
    const ids = await clientIds(raw, `${name}-pub`);
    assert.equal(ids.length, 1);
    await raw.client('KILL', 'ID', ids[0]!);
    await until('the bus to notice the kill', () => statuses.includes(false));
    await until('the bus to reconnect', () => bus.connected);
    await bus.publish(5);
    await until('seq 5', () => seen.length >= 1);
    assert.deepEqual(seen, [5]);
  });

  test('with nothing listening, open resolves within the bounded wait and publish and close neither throw nor hang', async () => {
    const errors: unknown[] = [];
    const statuses: boolean[] = [];
    const started = Date.now();
    const bus = await RedisBus.open({ url: 'redis://127.0.0.1:1', channel: unique('latch-test-down'), onError: (err) => errors.push(err), onStatus: (c) => statuses.push(c) });
    const opened = Date.now() - started;
    try {
      assert.ok(opened < 3_000, `open took ${opened} ms`);
      assert.equal(bus.connected, false);
      bus.subscribe(() => assert.fail('no wake-up can come from a Redis that is not there'));

      const before = errors.length;
      const publishStarted = Date.now();
      await bus.publish(1);
      assert.ok(Date.now() - publishStarted < 200, 'publish fails fast instead of queueing');
      assert.equal(errors.length, before + 1, 'the failed publish is reported');
      assert.match(String((errors[errors.length - 1] as Error).message), /publish of seq 1 failed/);
      // Connection errors are reported once per outage, not once per retry.
      assert.ok(errors.length <= 3, `${errors.length} errors reported`);
      assert.deepEqual(statuses, []);
    } finally {
      const closeStarted = Date.now();
      await bus.close();
      assert.ok(Date.now() - closeStarted < 1_500, 'close returns promptly');
    }
    assert.equal(bus.connected, false);
    await bus.publish(2);
  });

  test('close is idempotent and leaves no connection behind', async () => {
    const channel = unique('latch-test-close');
    const name = unique('latch-test-bus');
    const { bus, statuses } = await openBus({ channel, connectionName: name });
    const raw = rawClient();
    assert.equal((await clientIds(raw, `${name}-pub`)).length, 1);
    assert.equal((await clientIds(raw, `${name}-sub`)).length, 1);

    const started = Date.now();
    const first = bus.close();
    const second = bus.close();
    assert.equal(first, second);
    await first;
    await bus.close();
    assert.ok(Date.now() - started < 1_500);
    assert.equal(bus.connected, false);
    assert.deepEqual(statuses, [true, false]);
    // QUIT is answered before the server closes the socket, so the list may lag a moment.
    let left = -1;
    const deadline = Date.now() + 1_000;
    do {
      left = (await clientIds(raw, `${name}-pub`)).length + (await clientIds(raw, `${name}-sub`)).length;
      if (left === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    } while (Date.now() < deadline);
    assert.equal(left, 0);
    // Publishing on a closed bus is a no-op, not a throw.
    await bus.publish(3);
  });
}
