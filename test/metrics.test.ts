// GET /metrics: Prometheus text with the figures an operator alerts on, moving with traffic.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bearer, harness, post, registerAndLogin, type Harness } from './helpers.ts';

const value = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `${series} missing`);
  return Number(line.slice(series.length + 1));
};

describe('GET /metrics', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ refreshReuseGrace: 0 });
  });
  after(async () => h.close());

  it('counts logins, refreshes, reuse, revocations, and reports freshness, queue and latency', async () => {
    const t = await registerAndLogin(h.app, 'metric');
    await post(h.app, '/v1/login', { username: 'metric', password: 'wrong password' });
    await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token });
    await post(h.app, '/v1/refresh', { refresh_token: t.refresh_token }); // reuse
    const u = await registerAndLogin(h.app, 'metric2');
    await h.app.inject({ method: 'POST', url: '/v1/logout', headers: bearer(u.access_token) });
    await h.opened.latch.revocations.wake();

    const res = await h.app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = res.body;
    assert.equal(value(text, 'latch_logins_total{outcome="success"}'), 2);
    assert.equal(value(text, 'latch_logins_total{outcome="failure"}'), 1);
    assert.equal(value(text, 'latch_refreshes_total{outcome="success"}'), 1);
    assert.equal(value(text, 'latch_refreshes_total{outcome="reused"}'), 1);
    assert.equal(value(text, 'latch_revocations_written_total'), 2);
    assert.equal(value(text, 'latch_revocations_applied_total{kind="session"}'), 2);
    assert.equal(value(text, 'latch_revocation_fresh'), 1);
    assert.equal(value(text, 'latch_revocation_entries'), 2);
    assert.equal(value(text, 'latch_password_hash_queue_depth'), 0);
    assert.ok(value(text, 'latch_revocation_staleness_seconds') < 5);
    assert.ok(value(text, 'latch_revocation_lag_seconds_count') >= 2);
    assert.match(text, /latch_http_request_duration_seconds_count\{method="POST",route="\/v1\/login",status="2xx"\} 2/);
    assert.match(text, /latch_background_errors_total\{source="store"\} 0/);
    assert.doesNotMatch(text, /^latch_bus_connected /m, 'no Redis, no bus gauge value');
  });
});
