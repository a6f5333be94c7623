// Admin polling and readiness waiters with a stand-in admin client on a FakeClock.
import t from 'tap';
import { FakeClock } from '../../src/lib/clock';
import type { Running } from '../../src/sidecar/epochs';
import type { ProxyMode } from '../../src/sidecar/plan';
import { Readiness } from '../../src/sidecar/readiness';
import { fakeAdmin } from '../helpers/sidecar-fakes';
import { testDeps } from '../helpers/deps';

function running(epoch: number): Running {
  return {
    epoch,
    handle: {
      pid: 100 + epoch,
      stdout: null,
      stderr: null,
      exited: new Promise(() => undefined),
      terminate: () => undefined,
      kill: () => undefined,
    },
    startedAt: 0,
    role: 'current',
    ready: false,
    configFile: undefined,
    exit: undefined,
    drainKill: undefined,
    stopRequested: false,
  };
}

function setup(mode: ProxyMode = 'envoy') {
  const clock = new FakeClock();
  const deps = testDeps({ clock, throwOnFatal: true });
  const halt = new AbortController();
  const admin = fakeAdmin();
  const changes: boolean[] = [];
  const state = { current: running(0) as Running | undefined };
  const rd = new Readiness({
    log: deps.log,
    clock,
    pollMs: 250,
    livePollMs: 5000,
    halt: halt.signal,
    current: () => state.current,
    admin: () => admin,
    mode: () => mode,
    ready: () => state.current?.ready ?? false,
    onChange: (live) => changes.push(live),
    changed: deps.changed,
  });
  return { clock, deps, halt, admin, changes, state, rd, changed: () => deps.changes.count };
}

void t.test('polls fast until LIVE, then slowly; a waiter wakes on LIVE', async (t) => {
  const s = setup();
  s.rd.start();
  const waiting = s.rd.waitReady(15_000, new AbortController().signal);
  await s.clock.advance(0);
  t.equal(s.admin.probes, 1, 'the first probe at once');
  const at: number[] = [];
  for (let ms = 1; ms <= 1000; ms++) {
    const n = s.admin.probes;
    await s.clock.advance(1);
    if (s.admin.probes > n) at.push(ms);
  }
  t.same(at, [10, 30, 70, 150, 310, 560, 810], 'from 10 ms, doubling, then every 250 ms');
  s.admin.answer = { state: 'LIVE', epoch: 0 };
  await s.clock.advance(59);
  t.equal(s.admin.probes, 8, 'the next one at 1060 ms');
  await s.clock.advance(1);
  t.equal(await waiting, true);
  t.ok(s.state.current!.ready);
  t.same(s.changes, [true]);
  t.match(s.deps.records.at(-1), { msg: 'envoy epoch 0 is LIVE', epoch: 0, pid: 100 });
  const n = s.admin.probes;
  await s.clock.advance(4999);
  t.equal(s.admin.probes, n, 'every 5 s once LIVE');
  await s.clock.advance(1);
  t.equal(s.admin.probes, n + 1);
  t.equal(await s.rd.waitReady(1, new AbortController().signal), true, 'ready: at once');

  s.admin.answer = { state: 'DRAINING', epoch: 0 };
  await s.clock.advance(5000);
  t.same(s.changes, [true, false]);
  t.match(s.deps.records.at(-1), {
    level: 'warn',
    msg: 'envoy epoch 0 is no longer LIVE (DRAINING)',
  });
  s.halt.abort();
  await s.rd.done();
});

void t.test(
  'after a hot restart the old epoch answering does not make the new one LIVE',
  async (t) => {
    const s = setup();
    s.state.current = running(1);
    s.admin.answer = { state: 'LIVE', epoch: 0 };
    s.rd.start();
    await s.clock.advance(1000);
    t.same(s.changes, []);
    t.equal(s.rd.lastProbe?.epoch, 0);
    s.admin.answer = { state: 'LIVE', epoch: 1 };
    s.rd.kick();
    await s.clock.advance(0);
    t.same(s.changes, [true], 'kick polls at once');
    // A process started again (kick): fast polling from 10 ms again.
    s.state.current = running(2);
    s.rd.kick();
    await s.clock.advance(0);
    const n = s.admin.probes;
    await s.clock.advance(10);
    t.equal(s.admin.probes, n + 1, 'the first probe after a kick is 10 ms after it');
    s.halt.abort();
    await s.rd.done();
  },
);

void t.test("pilot-agent: its envoy's epoch is tracked and reported", async (t) => {
  const s = setup('pilot-agent');
  s.admin.answer = { state: 'LIVE', epoch: 2 };
  s.rd.start();
  await s.clock.advance(0);
  t.equal(s.rd.envoyEpoch, 2);
  t.equal(s.changed(), 1);
  t.match(s.deps.records.at(-1), { msg: "pilot-agent's envoy is LIVE", epoch: 2 });
  s.halt.abort();
  await s.rd.done();
});

void t.test('waiters: false after the timeout, on abort, and on release', async (t) => {
  const s = setup();
  const timedOut = s.rd.waitReady(1000, new AbortController().signal);
  await s.clock.advance(1000);
  t.equal(await timedOut, false);
  const ac = new AbortController();
  const aborted = s.rd.waitReady(1000, ac.signal);
  ac.abort();
  t.equal(await aborted, false);
  const released = s.rd.waitReady(1000, new AbortController().signal);
  s.rd.release();
  t.equal(await released, false);
  t.equal(s.clock.pending, 0, 'no timer left behind');
});

void t.test('not LIVE in time at start: a problem until it is LIVE', async (t) => {
  const s = setup();
  s.rd.start();
  await s.clock.advance(1000);
  s.rd.notLiveAfter(15_000, { mode: 'envoy', adminPort: 15000 });
  t.equal(
    s.rd.problem,
    'envoy not LIVE after 15s (admin 127.0.0.1:15000: UNREACHABLE); still waiting',
  );
  t.match(s.deps.records.at(-1), { level: 'warn', state: 'UNREACHABLE', adminPort: 15000 });
  t.equal(s.changed(), 1);
  s.admin.answer = { state: 'LIVE', epoch: 0 };
  await s.clock.advance(250);
  t.equal(s.rd.problem, undefined);
  s.halt.abort();
  await s.rd.done();
});

void t.test('no probe without a current process; polling ends on halt', async (t) => {
  const s = setup();
  s.state.current = undefined;
  s.rd.start();
  await s.clock.advance(1000);
  t.equal(s.admin.probes, 0);
  s.halt.abort();
  await s.rd.done();
  t.equal(s.clock.pending, 0);
});
