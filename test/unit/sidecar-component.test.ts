// The sidecar component with stand-ins for every external actor (pilot-agent mode: no files):
// building it does no I/O; preflight resolves the plan that start then uses; stop drains and ends.
import t from 'tap';
import { FakeClock } from '../../src/lib/clock';
import {
  createSidecar,
  createSidecarComponent,
  RUNTIME_DEFAULTS,
  type SidecarRuntime,
} from '../../src/sidecar/index';
import { MetricStore } from '../../src/observe/index';
import { fakeAdmin, fakeLauncher } from '../helpers/sidecar-fakes';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';

const VARS = {
  SIDECAR_MODE: 'pilot-agent',
  ISTIO_BIN_BASE: '/opt/istio',
  ISTIO_SVC_IP: '10.0.0.5',
  POD_NAME: 'vm-1',
  ISTIO_PROXY_DRAIN_SECONDS: '1',
};

function standIns() {
  const calls: string[] = [];
  const launcher = fakeLauncher();
  const admin = fakeAdmin({ state: 'LIVE', epoch: 0 });
  const note =
    <T>(name: string, v: T) =>
    (...args: unknown[]): Promise<T> => {
      calls.push([name, ...args.map(String)].join(' '));
      return Promise.resolve(v);
    };
  const rt: SidecarRuntime = {
    ...RUNTIME_DEFAULTS,
    launcher: {
      launch(spec) {
        calls.push('launch');
        return launcher.launch(spec);
      },
    },
    admin: (port) => {
      calls.push(`admin ${port}`);
      return admin;
    },
    isRoot: true,
    processEnv: {},
    hostFacts: note('hostFacts', { primaryIp: '10.9.9.9', hostname: 'h' }),
    lookupUser: note('lookupUser', {
      name: 'istio-proxy',
      uid: 1337,
      gid: 1337,
      home: '/',
      shell: '/bin/sh',
    }),
    currentUser: () => {
      throw new Error('root: no currentUser');
    },
    findTool: (name) => note('findTool', `/usr/bin/${name}`)(name),
    isExecutable: (file) => note('isExecutable', file.endsWith('/pilot-agent'))(file),
    checkTrusted: note('checkTrusted', undefined),
    envoyVersion: note('envoyVersion', undefined),
  };
  return { rt, calls, launcher, admin };
}

void t.test('building the component does no I/O', async (t) => {
  const clock = new FakeClock();
  const deps = {
    ...testDeps({ clock, throwOnFatal: true }),
    exec: () => Promise.reject(new Error('no exec while building')),
  };
  const c = await createSidecarComponent(testConfig(VARS), deps);
  t.ok(c);
  t.same(c!.status(), { ready: false, summary: 'sidecar not started' });
  t.equal(clock.pending, 0, 'no timer armed');
  const s = standIns();
  createSidecar(testConfig(VARS), testDeps({ clock, throwOnFatal: true }), s.rt);
  t.same(s.calls, [], 'the runtime is not asked anything');
  t.equal(await createSidecarComponent(testConfig({ SIDECAR_MODE: 'none' }), deps), undefined);
});

void t.test(
  'preflight resolves the plan once; start uses it, runs, and stop ends it',
  async (t) => {
    const clock = new FakeClock();
    const deps = testDeps({ clock, throwOnFatal: true });
    const s = standIns();
    const sc = createSidecar(testConfig(VARS), deps, s.rt);
    await sc.preflight();
    const resolved = [...s.calls];
    t.same(resolved, [
      'isExecutable /opt/istio/pilot-agent',
      'isExecutable /opt/istio/envoy',
      'checkTrusted /opt/istio/pilot-agent',
      'lookupUser istio-proxy',
      'findTool setpriv',
      'findTool unshare',
    ]);
    t.equal(s.launcher.children.length, 0, 'preflight starts nothing');

    const started = sc.start(new AbortController().signal);
    await clock.advance(0);
    await started;
    t.same(s.calls.slice(resolved.length), ['admin 15000', 'launch'], 'no second resolution');
    t.ok(sc.status().ready);
    t.equal(sc.status().summary, 'sidecar pilot-agent (envoy epoch 0), 0 restarts');
    t.ok(
      deps.records.some((r) => r.msg.startsWith('sidecar: pilot-agent as istio-proxy (1337:1337)')),
    );

    const stopped = sc.stop();
    await clock.advance(1000);
    await stopped;
    t.same(s.admin.posts, ['/healthcheck/fail', '/drain_listeners?graceful']);
    t.same(s.launcher.children[0]!.signals.slice(0, 1), ['TERM']);
    t.match(deps.records.at(-1), { msg: 'sidecar stopped', restarts: 0 });
    t.notOk(sc.status().ready);
  },
);

void t.test(
  'a reload that restarts the sidecar replaces the pending crash restart, in the status too; restarts are counted by cause',
  async (t) => {
    const clock = new FakeClock();
    const metrics = new MetricStore();
    const deps = { ...testDeps({ clock, throwOnFatal: true }), metrics };
    const s = standIns();
    const sc = createSidecar(testConfig(VARS), deps, s.rt);
    const started = sc.start(new AbortController().signal);
    await clock.advance(0);
    await started;
    t.teardown(async () => {
      const stopped = sc.stop();
      await clock.advance(5000);
      await stopped;
    });
    s.launcher.children[0]!.exit({ code: 1, signal: null });
    await clock.advance(0);
    t.ok(sc.status().details?.nextStartAt, 'the crash restart is pending, with its time');
    await sc.reload(testConfig({ ...VARS, ISTIO_AGENT_FLAGS: '--concurrency 2' }));
    t.equal(s.launcher.children.length, 2, 'the reload started the sidecar at once');
    t.equal(sc.status().details?.nextStartAt, undefined, 'no restart pending any more');
    await clock.advance(60_000);
    t.equal(s.launcher.children.length, 2, 'and none comes');
    t.same(
      metrics.recorded().counters.filter((c) => c.name === 'sidecar_restarts_total'),
      [{ name: 'sidecar_restarts_total', labels: { cause: 'config' }, value: 1 }],
    );
  },
);
