import t from 'tap';
import { FakeClock } from '../../src/lib/clock';
import { parseReadyBody, parseServerInfo } from '../../src/sidecar/admin';
import {
  childLineLevel,
  LineLimiter,
  LineSplitter,
  MAX_LINE_BYTES,
  OutputForwarder,
} from '../../src/sidecar/output';
import type { SidecarPlan } from '../../src/sidecar/plan';
import {
  classifyExit,
  CRASH_LOOP_AFTER,
  describeExit,
  formatMs,
  HEALTHY_RESET_MS,
  nextEpoch,
  onCrash,
  onReconfigure,
  onRotation,
  notLivePollMs,
  ordinal,
  probeSaysLive,
  RESTART_POLICY,
  rotationNote,
} from '../../src/sidecar/policy';
import { testLogger } from '../helpers/deps';

const mid = () => 0.5; // no jitter
const low = () => 0; // -20 %
const high = () => 0.999999; // +20 %

void t.test('crash backoff: 200 ms doubling, capped at 30 s, never gives up', (t) => {
  let s = { streak: 0, restarts: 0 };
  const delays: number[] = [];
  for (let i = 0; i < 12; i++) {
    const d = onCrash(s, 50, mid);
    delays.push(d.delayMs);
    s = d;
  }
  t.same(delays, [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000, 30000]);
  t.equal(s.restarts, 12);
  t.equal(s.streak, 12);
  t.end();
});

void t.test('crash backoff: jitter stays within ±20 % and under the cap', (t) => {
  t.equal(onCrash({ streak: 0, restarts: 0 }, 0, low).delayMs, 160);
  t.equal(onCrash({ streak: 0, restarts: 0 }, 0, high).delayMs, 240);
  t.equal(onCrash({ streak: 20, restarts: 0 }, 0, high).delayMs, RESTART_POLICY.maxMs);
  t.equal(onCrash({ streak: 20, restarts: 0 }, 0, low).delayMs, 24000);
  t.end();
});

void t.test('crash backoff resets after a healthy stretch; crash loop after 3 in a row', (t) => {
  const long = onCrash({ streak: 7, restarts: 9 }, HEALTHY_RESET_MS, mid);
  t.equal(long.delayMs, 200);
  t.equal(long.streak, 1);
  t.equal(long.restarts, 10);
  t.notOk(long.crashLoop);
  t.equal(onCrash({ streak: 7, restarts: 9 }, HEALTHY_RESET_MS - 1, mid).delayMs, 25600);
  t.notOk(onCrash({ streak: CRASH_LOOP_AFTER - 2, restarts: 0 }, 0, mid).crashLoop);
  t.ok(onCrash({ streak: CRASH_LOOP_AFTER - 1, restarts: 0 }, 0, mid).crashLoop);
  t.end();
});

void t.test('epochs', (t) => {
  t.equal(nextEpoch([]), 0);
  t.equal(nextEpoch([0]), 1);
  t.equal(nextEpoch([3, 4]), 5);
  t.end();
});

void t.test('rotation decisions', (t) => {
  const base = {
    mode: 'envoy' as const,
    stopping: false,
    restartPending: false,
    running: true,
    currentReady: true,
  };
  t.equal(onRotation(base), 'hot-restart');
  t.equal(onRotation({ ...base, currentReady: false }), 'defer');
  t.equal(onRotation({ ...base, running: false, restartPending: true }), 'restart-now');
  t.equal(onRotation({ ...base, running: false }), 'ignore');
  t.equal(onRotation({ ...base, mode: 'pilot-agent' }), 'ignore');
  t.equal(onRotation({ ...base, stopping: true }), 'ignore');
  t.end();
});

void t.test('exit descriptions', (t) => {
  t.equal(describeExit({ code: 1, signal: null }), 'exit code 1');
  t.equal(describeExit({ code: null, signal: 'SIGSEGV' }), 'killed by SIGSEGV');
  t.match(
    describeExit({ code: null, signal: null, error: new Error('spawn x ENOENT') }),
    /could not be started: spawn x ENOENT/,
  );
  t.equal(formatMs(200), '0.2s');
  t.equal(formatMs(30000), '30s');
  t.equal(formatMs(125000), '2m5s');
  t.end();
});

void t.test('admin answers', (t) => {
  t.equal(parseReadyBody('LIVE\n'), 'LIVE');
  t.equal(parseReadyBody('PRE_INITIALIZING'), 'PRE_INITIALIZING');
  t.equal(parseReadyBody('nonsense'), undefined);
  t.same(parseServerInfo('{"state":"LIVE","command_line_options":{"restart_epoch":2}}'), {
    state: 'LIVE',
    epoch: 2,
  });
  t.same(parseServerInfo('{"state":"DRAINING","command_line_options":{"restart_epoch":"4"}}'), {
    state: 'DRAINING',
    epoch: 4,
  });
  t.same(parseServerInfo('envoy 7d6e3b/1.7.0/Clean/RELEASE live 120 120 0'), {
    state: 'LIVE',
    epoch: undefined,
  });
  t.end();
});

void t.test('line splitting: chunks, UTF-8 across chunks, CRLF, overlong lines', (t) => {
  const s = new LineSplitter();
  t.same(s.push(Buffer.from('a\r\nb')), ['a']);
  const euro = Buffer.from('€\n');
  t.same(s.push(euro.subarray(0, 1)), []);
  t.same(s.push(euro.subarray(1)), ['b€']);
  const long = 'x'.repeat(MAX_LINE_BYTES + 10);
  const out = s.push(long);
  t.equal(out.length, 1);
  t.match(out[0], /…\[truncated\]$/);
  t.same(
    s.push('tail of the long line\nnext\n'),
    ['next'],
    'the rest of an overlong line is dropped',
  );
  t.same(s.push('partial'), []);
  t.same(s.end(), ['partial']);
  t.end();
});

void t.test('child line levels: envoy and Go istio log formats', (t) => {
  t.equal(childLineLevel('[2018-07-31 12:00:00.000][17][warning][config] x'), 'warn');
  t.equal(childLineLevel('[2018-07-31 12:00:00.000][17][critical][main] x'), 'error');
  t.equal(childLineLevel('[2018-07-31 12:00:00.000][17][debug][upstream] x'), 'debug');
  t.equal(childLineLevel('2018-08-01T00:00:00.000000Z\terror\tEpoch 0 exited'), 'error');
  t.equal(childLineLevel('2018-08-01T00:00:00.000000Z\tinfo\tVersion'), 'info');
  t.equal(childLineLevel('plain text'), undefined);
  t.end();
});

void t.test('line limiter: fixed windows on the injected clock', async (t) => {
  const clock = new FakeClock();
  const l = new LineLimiter(3, 60_000, clock);
  t.same([l.admit(), l.admit(), l.admit(), l.admit(), l.admit()], [true, true, true, false, false]);
  t.equal(l.takeDropped(), 2);
  t.equal(l.takeDropped(), 0);
  await clock.advance(60_000);
  t.ok(l.admit());
  t.ok(new LineLimiter(0, 60_000, clock).admit(), 'limit 0 = unlimited');
});

void t.test(
  'forwarder: records tagged as the sidecar, levels kept, one suppression record per window',
  async (t) => {
    const clock = new FakeClock();
    const { log: root, records } = testLogger();
    const log = root.child({ component: 'sidecar' });
    const f = new OutputForwarder(log, clock, 2);
    const child = log.child({ stream: 'stderr', proxy: 'envoy', epoch: 0 });
    f.line(child, '[2018-07-31 12:00:00.000][1][warning][main] one');
    f.line(child, 'two');
    f.line(child, 'three');
    f.line(child, 'four');
    t.equal(records.length, 2);
    t.match(records[0], {
      component: 'sidecar',
      stream: 'stderr',
      proxy: 'envoy',
      epoch: 0,
      level: 'warn',
      msg: /one$/,
    });
    t.match(records[1], { level: 'info', msg: 'two' });
    await clock.advance(60_000);
    t.equal(
      records.length,
      3,
      'the window closing reports what was suppressed without waiting for more output',
    );
    t.match(records[2], {
      component: 'sidecar',
      level: 'warn',
      suppressed: 2,
      msg: /2 lines of sidecar output suppressed/,
    });
    f.line(child, 'five');
    t.match(records[3], { msg: 'five' });
    f.close();
    t.equal(records.length, 4);
  },
);

void t.test(
  'rotation notes: one record per action; none when envoy has nothing to restart',
  (t) => {
    t.match(rotationNote('ignore', 'pilot-agent', 0), /pilot-agent watches them itself/);
    t.equal(rotationNote('ignore', 'envoy', 0), undefined);
    t.match(rotationNote('defer', 'envoy', 1), /once the current one is LIVE/);
    t.match(rotationNote('restart-now', 'envoy', 0), /instead of waiting out the backoff/);
    t.equal(
      rotationNote('hot-restart', 'envoy', 4),
      'certificates rotated; hot-restarting envoy into epoch 4',
    );
    t.end();
  },
);

void t.test('exit classification: asked for, old epoch after a hot restart, or a crash', (t) => {
  const base = { stopping: false, stopRequested: false, current: true };
  t.equal(classifyExit(base), 'crash', 'the current process dying on its own, any exit code');
  t.equal(classifyExit({ ...base, current: false }), 'after-hot-restart');
  t.equal(classifyExit({ ...base, stopRequested: true }), 'stopped');
  t.equal(classifyExit({ ...base, stopping: true }), 'stopped');
  t.equal(classifyExit({ ...base, current: false, stopRequested: true }), 'stopped');
  t.end();
});

void t.test(
  'reconfiguration: same plan nothing; envoy on the same port and dir hot; else restart',
  (t) => {
    const plan = {
      mode: 'envoy',
      binary: '/b/envoy',
      adminPort: 15000,
      configDir: '/c',
      serviceCluster: 'a',
      bootstrap: { nodeId: 'n' },
    } as unknown as SidecarPlan;
    t.equal(onReconfigure(plan, { ...plan }), 'none');
    t.equal(onReconfigure(plan, { ...plan, serviceCluster: 'b' }), 'hot-restart');
    t.equal(onReconfigure(plan, { ...plan, adminPort: 15001 }), 'restart');
    t.equal(onReconfigure(plan, { ...plan, configDir: '/d' }), 'restart');
    t.equal(onReconfigure(plan, { ...plan, mode: 'pilot-agent' }), 'restart');
    const pa = { ...plan, mode: 'pilot-agent' } as SidecarPlan;
    t.equal(onReconfigure(pa, { ...pa, serviceCluster: 'b' }), 'restart', 'pilot-agent restarts');
    t.equal(onReconfigure(pa, { ...pa }), 'none');
    t.end();
  },
);

void t.test(
  'probe: LIVE counts for the epoch that answers (envoy), for any epoch (pilot-agent)',
  (t) => {
    t.ok(probeSaysLive('envoy', { state: 'LIVE', epoch: 2 }, 2));
    t.notOk(probeSaysLive('envoy', { state: 'LIVE', epoch: 1 }, 2), 'the old epoch still answers');
    t.ok(
      probeSaysLive('envoy', { state: 'LIVE', epoch: undefined }, 2),
      'an envoy that does not say',
    );
    t.notOk(probeSaysLive('envoy', { state: 'INITIALIZING', epoch: 2 }, 2));
    t.ok(probeSaysLive('pilot-agent', { state: 'LIVE', epoch: 5 }, 0));
    t.notOk(probeSaysLive('pilot-agent', { state: 'UNREACHABLE', epoch: undefined }, 0));
    t.end();
  },
);

void t.test('admin polling before LIVE: from 10 ms, doubling, capped', (t) => {
  t.same(
    [0, 1, 2, 3, 4, 5, 6, 50].map((n) => notLivePollMs(n, 250)),
    [10, 20, 40, 80, 160, 250, 250, 250],
  );
  t.equal(notLivePollMs(0, 5), 5, 'never above the cap');
  t.end();
});

void t.test('ordinals', (t) => {
  t.same([1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112].map(ordinal), [
    '1st',
    '2nd',
    '3rd',
    '4th',
    '11th',
    '12th',
    '13th',
    '21st',
    '22nd',
    '23rd',
    '101st',
    '111th',
    '112th',
  ]);
  t.end();
});
