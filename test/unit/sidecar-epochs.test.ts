// The running processes with a stand-in launcher on a FakeClock: roles, the drain-kill deadline
// of a replaced epoch, exit housekeeping, and drain-then-SIGTERM-then-SIGKILL on stop.
import t from 'tap';
import { FakeClock } from '../../src/lib/clock';
import { Epochs, type Running } from '../../src/sidecar/epochs';
import type { ExitInfo } from '../../src/sidecar/launcher';
import { OutputForwarder } from '../../src/sidecar/output';
import {
  fakeAdmin,
  fakeLauncher,
  PILOT_AGENT_PLAN,
  type FakeLauncher,
} from '../helpers/sidecar-fakes';
import { testDeps } from '../helpers/deps';

const plan = PILOT_AGENT_PLAN;

function setup(launcher: FakeLauncher = fakeLauncher()) {
  const clock = new FakeClock();
  const deps = testDeps({ clock, throwOnFatal: true });
  const halt = new AbortController();
  const exits: [Running, ExitInfo][] = [];
  const epochs = new Epochs({
    log: deps.log,
    clock,
    launcher,
    output: new OutputForwarder(deps.log, clock, 0),
    stopTimeoutMs: 5000,
    drainKillGraceMs: 10_000,
    halt: halt.signal,
    onExit: (r, info) => exits.push([r, info]),
  });
  return { clock, deps, halt, exits, epochs, launcher };
}

const tick = () => new Promise((r) => setImmediate(r));

void t.test(
  'launch: the first is current; the next makes it draining with a kill deadline',
  async (t) => {
    const s = setup();
    const a = await s.epochs.launch(plan, 'start');
    t.equal(s.epochs.current, a);
    t.match(a, { epoch: 0, role: 'current', ready: false, configFile: undefined });
    t.equal(s.launcher.children[0]!.spec.file, '/opt/istio/pilot-agent');
    t.same(s.launcher.children[0]!.spec.args, ['proxy']);
    t.match(s.deps.records.at(-1), {
      msg: `started pilot-agent (pid ${a!.handle.pid}): start`,
      reason: 'start',
      proxy: 'pilot-agent',
    });
    t.notOk(s.epochs.serving());
    a!.ready = true;
    t.ok(s.epochs.serving());

    const b = await s.epochs.launch(plan, 'again');
    t.equal(s.epochs.current, b);
    t.equal(a!.role, 'draining');
    t.ok(s.epochs.serving(), 'the draining one serves until the new one is LIVE');
    // parent-shutdown (3 s) + grace (10 s)
    await s.clock.advance(12_999);
    t.same(s.launcher.children[0]!.signals, []);
    await s.clock.advance(1);
    t.same(
      s.launcher.children[0]!.signals,
      ['KILL', 'KILL'],
      'the deadline, then its process group once it exited',
    );
    t.match(
      s.deps.records.find((r) => r.level === 'warn'),
      {
        epoch: 0,
        msg: 'envoy epoch 0 did not exit after its parent-shutdown time; killing it',
      },
    );
    t.equal(s.exits.length, 1);
    t.equal(s.exits[0]![0], a);
    t.same(s.epochs.running, [b], 'an exited process is no longer running');
    t.ok(a!.exit);
  },
);

void t.test('an epoch that exits on its own before the deadline is not killed later', async (t) => {
  const s = setup();
  await s.epochs.launch(plan, 'start');
  await s.epochs.launch(plan, 'again');
  s.launcher.children[0]!.exit();
  await tick();
  t.same(s.launcher.children[0]!.signals, ['KILL'], 'only its process group, at exit');
  await s.clock.advance(20_000);
  t.same(s.launcher.children[0]!.signals, ['KILL'], 'the deadline was cancelled');
  t.equal(s.clock.pending, 0);
});

void t.test('nothing starts once halted; dropCurrent, killAll, allExited', async (t) => {
  const s = setup();
  const a = await s.epochs.launch(plan, 'start');
  s.epochs.dropCurrent();
  t.equal(s.epochs.current, undefined);
  t.same(s.epochs.running, [a]);
  s.epochs.killAll();
  await s.epochs.allExited();
  s.halt.abort();
  t.equal(await s.epochs.launch(plan, 'late'), undefined);
  t.equal(s.launcher.children.length, 1);
});

void t.test('stopAll: drain a LIVE sidecar, then SIGTERM', async (t) => {
  const s = setup();
  const admin = fakeAdmin();
  const a = await s.epochs.launch(plan, 'start');
  a!.ready = true;
  const stopped = s.epochs.stopAll(plan, true, admin);
  await tick();
  t.same(admin.posts, ['/healthcheck/fail', '/drain_listeners?graceful']);
  t.same(s.launcher.children[0]!.signals, [], 'no SIGTERM during the drain');
  await s.clock.advance(2000);
  await stopped;
  t.same(s.launcher.children[0]!.signals, ['TERM', 'KILL']);
  t.ok(a!.stopRequested);
  t.ok(s.deps.records.some((r) => r.msg === 'draining envoy for 2s before stopping'));
});

void t.test(
  'stopAll: SIGKILL after the timeout; an error when even that does not end it',
  async (t) => {
    const s = setup(fakeLauncher([]));
    await s.epochs.launch(plan, 'start');
    const stopped = s.epochs.stopAll(plan, false, fakeAdmin());
    await s.clock.advance(5000);
    t.same(s.launcher.children[0]!.signals, ['TERM', 'KILL']);
    t.match(s.deps.records.at(-1), { level: 'warn', msg: /within 5s of SIGTERM; sending SIGKILL/ });
    await s.clock.advance(5000);
    await stopped;
    t.match(s.deps.records.at(-1), {
      level: 'error',
      msg: 'sidecar process did not exit after SIGKILL',
    });
    s.launcher.children[0]!.exit();
  },
);
