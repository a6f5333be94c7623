import t from 'tap';
import {
  formatDuration,
  renewAt,
  retryDelay,
  RETRY_POLICY,
  RENEW_JITTER,
} from '../../src/certs/policy';
import { backoffDelay, Backoff } from '../../src/lib/backoff';

const H = 3_600_000;

t.test('renewal time: a share of the lifetime, jittered ±10 %', async (t) => {
  const table: [number, number, number, number, number][] = [
    // notBefore, notAfter, ratio, random, expected
    [0, 100 * H, 0.5, 0.5, 50 * H],
    [0, 100 * H, 0.5, 0, 45 * H],
    [0, 100 * H, 0.5, 1, 55 * H],
    [1000, 1000 + 60_000, 0.5, 0.5, 1000 + 30_000],
    [0, 2160 * H, 0.5, 0.5, 1080 * H],
    [0, 100 * H, 0.8, 0.5, 80 * H],
    [0, 100 * H, 0.9, 1, 99 * H],
  ];
  for (const [nb, na, ratio, r, want] of table) {
    t.equal(
      renewAt(nb, na, ratio, () => r),
      want,
      `${nb}..${na} at ${ratio}, random ${r}`,
    );
  }
});

t.test('renewal jitter stays within bounds over many draws, and spreads', async (t) => {
  let min = Infinity;
  let max = -Infinity;
  let seed = 42;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 10_000; i++) {
    const at = renewAt(0, 1000 * H, 0.5, rnd);
    min = Math.min(min, at);
    max = Math.max(max, at);
  }
  t.ok(min >= 500 * H * (1 - RENEW_JITTER), `min ${min / H} h`);
  t.ok(max <= 500 * H * (1 + RENEW_JITTER), `max ${max / H} h`);
  t.ok(max - min > 80 * H, 'renewals spread over most of the ±10 % window');
});

t.test('renewal is never after expiry', async (t) => {
  t.ok(renewAt(0, 1000, 0.9, () => 1) <= 1000);
});

t.test('retry delay: 5 s first, doubling, capped, never past half the time left', async (t) => {
  const mid = (): number => 0.5; // no jitter
  t.equal(retryDelay(0, 0, undefined, mid), 5000);
  t.equal(retryDelay(1, 0, undefined, mid), 10_000);
  t.equal(retryDelay(2, 0, undefined, mid), 20_000);
  t.equal(retryDelay(20, 0, undefined, mid), RETRY_POLICY.maxMs, 'capped');
  t.equal(retryDelay(20, 0, 60_000, mid), 30_000, 'half of the one minute left');
  t.equal(retryDelay(20, 0, 1500, mid), 1000, 'floored at 1 s');
  t.equal(retryDelay(0, 0, 100 * H, mid), 5000, 'far from expiry: plain backoff');
  t.equal(retryDelay(5, 10, 5, mid), 160_000, 'already expired: plain backoff');
});

t.test('backoff jitter bounds', async (t) => {
  const p = { initialMs: 200, multiplier: 2, maxMs: 30_000, jitter: 0.2 };
  t.equal(
    backoffDelay(p, 0, () => 0),
    160,
  );
  t.equal(
    backoffDelay(p, 0, () => 1),
    240,
  );
  t.equal(
    backoffDelay(p, 3, () => 0.5),
    1600,
  );
  t.equal(
    backoffDelay(p, 30, () => 1),
    30_000,
    'cap holds with jitter',
  );
  const b = new Backoff(p, () => 0.5);
  t.same([b.next(), b.next(), b.next()], [200, 400, 800]);
  b.reset();
  t.equal(b.next(), 200);
});

t.test('durations print as 1.0 did', async (t) => {
  t.equal(formatDuration(1079 * H + 59 * 60_000 + 59_800), '1079h59m59.8s');
  t.equal(formatDuration(29 * 60_000 + 59_000), '29m59s');
  t.equal(formatDuration(1500), '1.5s');
  t.equal(formatDuration(0), '0s');
});
