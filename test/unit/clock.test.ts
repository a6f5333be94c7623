// The injected clock (src/lib/clock.ts): the fake one tests advance, and the system one.
import t from 'tap';
import { FakeClock, systemClock } from '../../src/lib/clock';

t.test('FakeClock: wall and monotonic time move only with advance, together', async (t) => {
  const c = new FakeClock(Date.UTC(2026, 0, 1));
  t.equal(c.monotonicUs(), FakeClock.MONOTONIC_START_US);
  const fired: number[] = [];
  c.setTimeout(() => fired.push(c.now()), 1500);
  await c.advance(1000);
  t.equal(c.now(), Date.UTC(2026, 0, 1) + 1000);
  t.equal(c.monotonicUs(), FakeClock.MONOTONIC_START_US + 1_000_000n);
  t.same(fired, []);
  await c.advance(0.5);
  t.equal(c.monotonicUs(), FakeClock.MONOTONIC_START_US + 1_000_500n, 'fractions of a ms');
  await c.advance(1000);
  t.same(fired, [Date.UTC(2026, 0, 1) + 1500]);
  t.equal(c.pending, 0);
});

t.test('systemClock: CLOCK_MONOTONIC in microseconds, never backwards', async (t) => {
  const a = systemClock.monotonicUs();
  await systemClock.sleep(20);
  const b = systemClock.monotonicUs();
  t.ok(b - a >= 15_000n, `${b - a} µs passed in a 20 ms sleep`);
  t.ok(b - a < 5_000_000n);
  const hr = process.hrtime.bigint() / 1000n;
  t.ok(hr >= b && hr - b < 1_000_000n, 'the same clock as process.hrtime');
});
