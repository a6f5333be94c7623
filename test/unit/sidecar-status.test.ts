import t from 'tap';
import type { SidecarPlan } from '../../src/sidecar/plan';
import { sidecarStatus, type SidecarView } from '../../src/sidecar/status';

const plan = {
  mode: 'envoy',
  binary: '/b/envoy',
  user: { name: 'istio-proxy', uid: 1337, gid: 1337, home: '/', shell: '/bin/sh' },
  serviceNode: 'sidecar~10.0.0.5~vm-1.ns~ns.svc.cluster.local',
  adminPort: 15000,
} as SidecarPlan;

const view: SidecarView = {
  plan,
  current: { epoch: 2, handle: { pid: 42 }, role: 'current', ready: true },
  running: [
    { epoch: 1, handle: { pid: 41 }, role: 'draining', ready: true },
    { epoch: 2, handle: { pid: 42 }, role: 'current', ready: true },
  ],
  ready: true,
  envoyEpoch: undefined,
  state: 'LIVE',
  restarts: 1,
  consecutiveCrashes: 0,
  crashLoop: false,
  lastExit: 'exit code 1 after 0.3s',
  restartAt: undefined,
  problems: [undefined, undefined, undefined],
};

void t.test('not started', (t) => {
  t.same(sidecarStatus({ ...view, plan: undefined }), {
    ready: false,
    summary: 'sidecar not started',
  });
  t.end();
});

void t.test('envoy: summary, details, epochs', (t) => {
  const s = sidecarStatus(view);
  t.equal(s.ready, true);
  t.equal(s.summary, 'sidecar envoy epoch 2, 1 restart');
  t.notOk('problem' in s, 'no problem key when nothing is wrong');
  t.same(s.details, {
    mode: 'envoy',
    binary: '/b/envoy',
    user: 'istio-proxy',
    uid: 1337,
    gid: 1337,
    serviceNode: plan.serviceNode,
    adminPort: 15000,
    pid: 42,
    epoch: 2,
    epochs: [
      { epoch: 1, pid: 41, role: 'draining', ready: true },
      { epoch: 2, pid: 42, role: 'current', ready: true },
    ],
    state: 'LIVE',
    restarts: 1,
    consecutiveCrashes: 0,
    crashLoop: false,
    lastExit: 'exit code 1 after 0.3s',
    nextStartAt: undefined,
  });
  t.equal(
    sidecarStatus({ ...view, ready: false, restarts: 2 }).summary,
    'sidecar envoy epoch 2, 2 restarts, not LIVE yet',
  );
  t.end();
});

void t.test('down with a restart pending; the first problem wins', (t) => {
  const s = sidecarStatus({
    ...view,
    current: undefined,
    running: [],
    ready: false,
    restarts: 3,
    restartAt: Date.UTC(2026, 0, 1, 0, 0, 1, 600),
    problems: [undefined, 'launch failed', 'not LIVE'],
  });
  t.equal(s.summary, 'sidecar envoy down, 3 restarts', 'down: no "not LIVE yet"');
  t.equal(s.problem, 'launch failed');
  t.equal(s.details?.nextStartAt, '2026-01-01T00:00:01.600Z');
  t.equal(s.details?.pid, undefined);
  t.equal(
    sidecarStatus({ ...view, problems: ['crash loop', 'launch failed', 'not LIVE'] }).problem,
    'crash loop',
  );
  t.end();
});

void t.test('crash-looping: not ready, even while a process is LIVE between two crashes', (t) => {
  const s = sidecarStatus({
    ...view,
    crashLoop: true,
    consecutiveCrashes: 5,
    problems: ['crash loop: 5 exits in a row (last: exit code 1 after 0.3s)', undefined, undefined],
  });
  t.equal(s.ready, false, 'LIVE, but crash-looping');
  t.match(s.problem, /^crash loop: 5 exits in a row/);
  t.equal(s.details?.crashLoop, true);
  t.end();
});

void t.test("pilot-agent: its envoy's epoch from the admin port", (t) => {
  const pa = { ...plan, mode: 'pilot-agent' } as SidecarPlan;
  const cur = { epoch: 0, handle: { pid: 7 }, role: 'current', ready: true } as const;
  const s = sidecarStatus({ ...view, plan: pa, current: cur, running: [cur], envoyEpoch: 3 });
  t.equal(s.summary, 'sidecar pilot-agent (envoy epoch 3), 1 restart');
  t.equal(s.details?.epoch, 3);
  t.equal(
    sidecarStatus({ ...view, plan: pa, current: cur, running: [cur] }).summary,
    'sidecar pilot-agent, 1 restart',
  );
  t.equal(
    sidecarStatus({ ...view, plan: pa, current: undefined, restarts: 0 }).summary,
    'sidecar pilot-agent down, 0 restarts',
  );
  t.end();
});
