// The crash-restart schedule on a FakeClock: backoff delays, the crash loop, the healthy stretch.
import t from 'tap';
import { FakeClock } from '../../src/lib/clock';
import { AgentError } from '../../src/lib/errors';
import { CRASH_LOOP_AFTER, RESTART_POLICY } from '../../src/sidecar/policy';
import { Restarts } from '../../src/sidecar/restarts';
import { testDeps } from '../helpers/deps';

function setup() {
  const clock = new FakeClock();
  const deps = testDeps({ clock, throwOnFatal: true });
  let due = 0;
  const r = new Restarts({
    log: deps.log,
    clock,
    random: deps.random,
    policy: RESTART_POLICY,
    healthyResetMs: 60_000,
    label: () => 'envoy',
    due: () => {
      due++;
    },
    changed: deps.changed,
  });
  return { clock, deps, r, due: () => due, changed: () => deps.changes.count };
}

const exit1 = { code: 1, signal: null };

void t.test('a crash schedules the restart after the backoff; due fires once', async (t) => {
  const s = setup();
  s.r.crashed('envoy epoch 0', { epoch: 0 }, exit1, 300);
  t.ok(s.r.pending);
  t.equal(s.r.nextStartAt, s.clock.now() + 200);
  t.equal(s.r.count, 1);
  t.equal(s.r.streak, 1);
  t.equal(s.r.lastExit, 'exit code 1 after 0.3s');
  t.match(s.deps.records.at(-1), {
    level: 'warn',
    epoch: 0,
    ranForMs: 300,
    restartInMs: 200,
    consecutive: 1,
    restarts: 1,
    msg: 'envoy epoch 0 exit code 1 after 0.3s; restarting in 0.2s (1st consecutive)',
  });
  await s.clock.advance(199);
  t.equal(s.due(), 0);
  await s.clock.advance(1);
  t.equal(s.due(), 1);
  t.notOk(s.r.pending);
  t.equal(s.r.nextStartAt, undefined);
});

void t.test('crash loop from the third in a row; a healthy stretch clears it', async (t) => {
  const s = setup();
  for (let i = 0; i < CRASH_LOOP_AFTER; i++) s.r.crashed('envoy epoch 0', {}, exit1, 10);
  t.equal(s.r.nextStartAt, s.clock.now() + 800);
  t.match(s.r.problems[0], /^crash loop: 3 exits in a row \(last: exit code 1 after 0s\)/);
  t.ok(s.deps.records.some((x) => x.level === 'error' && x.code === 'AGENT_E_SIDECAR_CRASHLOOP'));
  await s.clock.advance(800);
  let alive = true;
  s.r.started(() => alive);
  await s.clock.advance(59_999);
  t.equal(s.r.streak, 3);
  await s.clock.advance(1);
  t.equal(s.r.streak, 0);
  t.same(s.r.problems, [undefined, undefined]);
  t.equal(s.changed(), 1, 'the cleared problem is reported');
  t.match(s.deps.records.at(-1), { msg: 'envoy has been running for 60s; crash backoff reset' });
  t.equal(s.r.count, 3, 'restarts are not reset');

  s.r.crashed('envoy epoch 0', {}, exit1, 10);
  alive = false;
  s.r.started(() => alive);
  await s.clock.advance(60_000);
  t.equal(s.r.streak, 1, 'a process that is gone or replaced resets nothing');
});

void t.test('a failed launch backs off too, without counting a restart', async (t) => {
  const s = setup();
  s.r.launchFailed(new AgentError('AGENT_E_SIDECAR_BOOTSTRAP', 'cannot write the bootstrap'));
  s.r.launchFailed(new AgentError('AGENT_E_SIDECAR_BOOTSTRAP', 'cannot write the bootstrap'));
  t.equal(s.r.count, 0);
  t.equal(s.r.streak, 2);
  t.same(s.r.problems, [undefined, 'cannot write the bootstrap']);
  t.equal(s.r.nextStartAt, s.clock.now() + 400);
  t.match(s.deps.records.at(-1), {
    level: 'error',
    code: 'AGENT_E_SIDECAR_BOOTSTRAP',
    retryInMs: 400,
    msg: 'cannot write the bootstrap; retrying in 0.4s',
  });
  await s.clock.advance(400);
  t.equal(s.due(), 1, 'one timer only: the second replaced the first');
  s.r.started(() => true);
  t.same(s.r.problems, [undefined, undefined], 'a start clears it');
});

void t.test('cancel drops the restart; stop drops both timers', async (t) => {
  const s = setup();
  s.r.crashed('pilot-agent', {}, exit1, 10);
  t.ok(s.r.nextStartAt !== undefined, 'the pending restart has a time');
  s.r.cancel();
  t.notOk(s.r.pending);
  t.equal(s.r.nextStartAt, undefined, "a cancelled restart's time goes from the status too");
  s.r.crashed('pilot-agent', {}, exit1, 10);
  s.r.cancel();
  t.equal(s.r.nextStartAt, undefined);
  s.r.started(() => true);
  s.r.stop();
  t.equal(s.clock.pending, 0);
  await s.clock.advance(120_000);
  t.equal(s.due(), 0);
  t.equal(s.r.streak, 2);
});
