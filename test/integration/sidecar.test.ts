// The sidecar supervisor with real child processes: the envoy and pilot-agent test doubles in
// test/doubles/ stand in for the real binaries (not packaged for Debian). As root the child runs
// as `nobody` through setpriv; otherwise as the current user.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeClock } from '../../src/lib/clock';
import { AgentError } from '../../src/lib/errors';
import {
  createSidecar,
  createSidecarComponent,
  type SidecarRuntime,
} from '../../src/sidecar/index';
import { HEALTHY_RESET_MS } from '../../src/sidecar/policy';
import { testConfig } from '../helpers/config';
import { testDeps, type TestDeps } from '../helpers/deps';
import {
  alive,
  binBase,
  CHILD_USER,
  freePort,
  killRecorded,
  isRoot,
  openTapProcessInfo,
  records,
  waitFor,
} from '../helpers/sidecar';
import { tmpDir, type Teardown } from '../helpers/tmp';

openTapProcessInfo();
const runAs = isRoot ? CHILD_USER : os.userInfo().username;
const NODE_ID = 'sidecar~10.0.0.5~vm-1.bookinfo~bookinfo.svc.cluster.local';

interface Setup {
  readonly vars: Record<string, string>;
  readonly runtime: Partial<SidecarRuntime>;
  readonly dirs: {
    bin: string;
    cfg: string;
    rec: string;
    state: string;
    certs: string;
    crash: string;
  };
  readonly port: number;
}

/** Directories and variables for one sidecar; when `t` ends, any double still alive is killed. */
async function setup(
  t: Teardown,
  mode: 'envoy' | 'pilot-agent',
  extra: Record<string, string> = {},
): Promise<Setup> {
  const port = await freePort();
  const open = { mode: 0o1777 };
  const dirs = {
    bin: binBase(t, mode === 'envoy' ? ['envoy'] : ['envoy', 'pilot-agent']),
    cfg: tmpDir(t, 'sidecar-cfg-'),
    rec: tmpDir(t, 'sidecar-rec-', open),
    state: tmpDir(t, 'sidecar-state-', open),
    certs: tmpDir(t, 'sidecar-certs-'),
    crash: tmpDir(t, 'sidecar-crash-', open),
  };
  // Teardowns run last-in first-out: the doubles die before their directories go.
  t.teardown(() => {
    killRecorded(dirs.rec);
  });
  const vars: Record<string, string> = {
    SIDECAR_MODE: mode,
    ISTIO_BIN_BASE: dirs.bin,
    ISTIO_PROXY_CONFIG_DIR: dirs.cfg,
    ISTIO_PROXY_DRAIN_SECONDS: '1',
    ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS: '1',
    EXEC_USER: runAs,
    ENVOY_USER: runAs,
    ISTIO_SVC_IP: '10.0.0.5',
    POD_NAME: 'vm-1',
    ISTIO_NAMESPACE: 'bookinfo',
    CERTS_DIR: dirs.certs,
    ISTIO_PROXY_READY_TIMEOUT: '15s',
    ...(mode === 'envoy'
      ? { ISTIO_PROXY_ADMIN_PORT: String(port), PILOT_ADDRESS: 'istio-pilot.istio-system:15011' }
      : {
          ISTIO_AGENT_FLAGS: `--proxyAdminPort ${port} --proxyLogLevel info`,
          ISTIO_META_NETWORK: 'n1',
        }),
    ...extra,
  };
  const processEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    NOTIFY_SOCKET: '/run/systemd/notify-must-not-leak',
    FAKE_ENVOY_STATE_DIR: dirs.state,
    FAKE_ENVOY_RECORD_DIR: dirs.rec,
    FAKE_ENVOY_CRASH_FILE: path.join(dirs.crash, 'envoy'),
    FAKE_PILOT_AGENT_RECORD_DIR: dirs.rec,
    FAKE_PILOT_AGENT_CRASH_FILE: path.join(dirs.crash, 'pilot-agent'),
    FAKE_PILOT_AGENT_CONFIG_DIR: dirs.state,
  };
  return { vars, runtime: { processEnv }, dirs, port };
}

const byProgram = (dir: string, p: 'envoy' | 'pilot-agent') =>
  records(dir).filter((r) => r.program === p);

interface EpochInfo {
  readonly epoch: number;
  readonly role: string;
  readonly ready: boolean;
}
function currentEpoch(sc: {
  status(): { details?: Record<string, unknown> };
}): EpochInfo | undefined {
  return (sc.status().details?.epochs as EpochInfo[]).find((e) => e.role === 'current');
}

function sidecarLines(deps: TestDeps, re: RegExp) {
  return deps.records.filter(
    (r) => r.component === 'sidecar' && r.stream !== undefined && re.test(r.msg),
  );
}

void t.test(
  'envoy mode: start, argv, bootstrap on disk, stale rev files, drain then stop',
  async (t) => {
    const s = await setup(t, 'envoy');
    writeFileSync(path.join(s.dirs.cfg, 'envoy-rev7.json'), '{}');
    const deps = testDeps({ throwOnFatal: true });
    const sc = createSidecar(testConfig(s.vars), deps, s.runtime);
    await sc.start(new AbortController().signal);
    t.teardown(() => sc.stop());

    const st = sc.status();
    t.ok(st.ready, 'ready once envoy says LIVE');
    t.equal(st.summary, 'sidecar envoy epoch 0, 0 restarts');
    t.equal(st.problem, undefined);
    t.notOk(
      existsSync(path.join(s.dirs.cfg, 'envoy-rev7.json')),
      'stale rev file from an earlier run removed',
    );

    const [rec] = byProgram(s.dirs.rec, 'envoy');
    t.ok(rec, 'envoy ran');
    const file = path.join(s.dirs.cfg, 'envoy-rev0.json');
    t.same(rec!.argv, [
      '-c',
      file,
      '--restart-epoch',
      '0',
      '--drain-time-s',
      '1',
      '--parent-shutdown-time-s',
      '1',
      '--service-cluster',
      'rawvm',
      '--service-node',
      NODE_ID,
      '-l',
      'warning',
      '--max-obj-name-len',
      '189', // the double says it is envoy 1.8
    ]);
    t.equal(
      rec!.env.NOTIFY_SOCKET,
      undefined,
      "systemd's notify socket does not reach the sidecar",
    );
    t.equal(rec!.env.USER, runAs);

    // The bootstrap envoy read, field by field.
    const b = JSON.parse(readFileSync(file, 'utf8'));
    t.same(b.node, { id: NODE_ID, cluster: 'rawvm', metadata: { istio: 'sidecar' } });
    t.same(b.admin.address.socket_address, { address: '127.0.0.1', port_value: s.port });
    const xds = b.static_resources.clusters[0];
    t.equal(xds.name, 'xds-grpc');
    t.same(xds.hosts[0].socket_address, { address: 'istio-pilot.istio-system', port_value: 15011 });
    const tls = xds.tls_context.common_tls_context;
    t.equal(
      tls.tls_certificates[0].certificate_chain.filename,
      path.join(s.dirs.certs, 'cert-chain.pem'),
    );
    t.equal(tls.tls_certificates[0].private_key.filename, path.join(s.dirs.certs, 'key.pem'));
    t.equal(tls.validation_context.trusted_ca.filename, path.join(s.dirs.certs, 'root-cert.pem'));
    t.same(tls.validation_context.verify_subject_alt_name, [
      'spiffe://cluster.local/ns/istio-system/sa/istio-pilot-service-account',
    ]);

    t.ok(
      sidecarLines(deps, /admin address/).length > 0,
      "envoy's output reaches the log tagged as the sidecar's",
    );
    await sc.stop();
    t.notOk(alive(rec!.pid), 'envoy has exited when stop() resolves');
    const drained = deps.records.findIndex(
      (r) => r.stream === 'stderr' && /health check failed by admin request/.test(r.msg),
    );
    const termed = deps.records.findIndex(
      (r) => r.stream === 'stderr' && /shutting down: SIGTERM/.test(r.msg),
    );
    t.ok(drained >= 0, 'POST /healthcheck/fail reached envoy');
    t.ok(termed > drained, 'SIGTERM came after the drain');
    t.same(
      readdirSync(s.dirs.cfg).filter((f) => f.startsWith('envoy-rev')),
      [],
      'rev files removed on stop',
    );
    t.equal(sc.status().ready, false);
  },
);

void t.test('envoy mode: certs-rotated starts epoch N+1 and the old epoch exits', async (t) => {
  const s = await setup(t, 'envoy');
  const deps = testDeps({ throwOnFatal: true });
  const sc = createSidecar(testConfig(s.vars), deps, s.runtime);
  await sc.start(new AbortController().signal);
  t.teardown(() => sc.stop());
  const [e0] = byProgram(s.dirs.rec, 'envoy');

  for (const epoch of [1, 2]) {
    deps.events.emit('certs-rotated', {
      certsDir: s.dirs.certs,
      generation: `g${epoch}`,
      notAfter: 0,
    });
    await waitFor(`epoch ${epoch} started`, () => currentEpoch(sc)?.epoch === epoch);
    t.equal(sc.status().summary, `sidecar envoy epoch ${epoch}, 0 restarts`);
    t.ok(
      sc.status().ready,
      'ready throughout: the previous epoch serves until the new one is LIVE',
    );
    await waitFor(`epoch ${epoch} LIVE`, () => currentEpoch(sc)?.ready === true);
    const info = (await (await fetch(`http://127.0.0.1:${s.port}/server_info`)).json()) as {
      command_line_options: { restart_epoch: number };
    };
    t.equal(
      info.command_line_options.restart_epoch,
      epoch,
      `the admin port is served by epoch ${epoch}`,
    );
    const old = byProgram(s.dirs.rec, 'envoy').find((r) => r.epoch === epoch - 1)!;
    await waitFor(`epoch ${epoch - 1} exits`, () => !alive(old.pid));
    await waitFor(
      `envoy-rev${epoch - 1}.json removed`,
      () => !existsSync(path.join(s.dirs.cfg, `envoy-rev${epoch - 1}.json`)),
    );
    const cur = byProgram(s.dirs.rec, 'envoy').find((r) => r.epoch === epoch)!;
    t.same(cur.argv.slice(0, 4), [
      '-c',
      path.join(s.dirs.cfg, `envoy-rev${epoch}.json`),
      '--restart-epoch',
      String(epoch),
    ]);
    t.ok(alive(cur.pid));
  }
  t.notOk(alive(e0!.pid));
  t.ok(
    deps.records.some((r) =>
      /envoy epoch 0 exited after the hot restart \(exit code 0\)/.test(r.msg),
    ),
    'the old epoch ended normally after its parent-shutdown time',
  );
  t.equal(sc.status().problem, undefined);
  await sc.stop();
  t.same(
    byProgram(s.dirs.rec, 'envoy').filter((r) => alive(r.pid)),
    [],
    'no envoy left',
  );
});

void t.test(
  'envoy mode: crashes restart on the backoff schedule (FakeClock), crash loop reported',
  async (t) => {
    const s = await setup(t, 'envoy');
    const clock = new FakeClock();
    const deps = testDeps({ clock, throwOnFatal: true });
    const sc = createSidecar(testConfig(s.vars), deps, s.runtime);
    const advance = (ms: number) => clock.advance(ms);
    const started = sc.start(new AbortController().signal);
    await waitFor('LIVE', () => sc.status().ready, { advance });
    await started;
    t.teardown(() => sc.stop());
    const crashFile = path.join(s.dirs.crash, 'envoy');
    const nextStart = () => sc.status().details?.nextStartAt as string | undefined;
    const restarts = () => sc.status().details?.restarts as number;

    writeFileSync(crashFile, '');
    const expected = [200, 400, 800];
    for (let i = 0; i < expected.length; i++) {
      await waitFor(`crash ${i + 1} seen`, () => restarts() === i + 1 && nextStart() !== undefined);
      t.equal(
        Date.parse(nextStart()!) - clock.now(),
        expected[i],
        `restart ${i + 1} waits ${expected[i]} ms`,
      );
      const before = byProgram(s.dirs.rec, 'envoy').length;
      await clock.advance(expected[i]! - 1);
      await new Promise((r) => setTimeout(r, 300));
      t.equal(
        byProgram(s.dirs.rec, 'envoy').length,
        before,
        'nothing started before the backoff elapsed',
      );
      if (i === expected.length - 1) rmSync(crashFile);
      await clock.advance(1);
      await waitFor(
        `process ${before + 1} started`,
        () => byProgram(s.dirs.rec, 'envoy').length === before + 1,
      );
    }
    t.match(sc.status().problem, /crash loop: 3 exits in a row \(last: exit code 1 after/);
    t.ok(
      deps.records.some((r) => r.level === 'error' && r.code === 'AGENT_E_SIDECAR_CRASHLOOP'),
      'the crash loop is logged with its code',
    );
    t.same(
      byProgram(s.dirs.rec, 'envoy').map((r) => r.epoch),
      [0, 0, 0, 0],
      'after a crash envoy starts again at epoch 0 (no parent to hot-restart from)',
    );
    await waitFor('LIVE again', () => sc.status().details?.state === 'LIVE', { advance });
    t.equal(sc.status().summary, 'sidecar envoy epoch 0, 3 restarts');
    t.equal(sc.status().ready, false, 'LIVE again, but not ready while the crash loop stands');
    await clock.advance(HEALTHY_RESET_MS);
    t.equal(sc.status().problem, undefined, 'a healthy stretch clears the crash loop');
    t.equal(sc.status().details?.consecutiveCrashes, 0);
    t.equal(sc.status().ready, true, 'and the sidecar is ready again');

    let stopped = false;
    const stopping = sc.stop().then(() => (stopped = true));
    await waitFor('stopped', () => stopped, { advance });
    await stopping;
    t.same(
      byProgram(s.dirs.rec, 'envoy').filter((r) => alive(r.pid)),
      [],
    );
  },
);

void t.test(
  'pilot-agent mode: argv and env as 1.0.1, readiness via its envoy, crash restarts',
  async (t) => {
    const s = await setup(t, 'pilot-agent', { SIDECAR_MODE: 'auto' });
    const deps = testDeps({ throwOnFatal: true });
    const sc = createSidecar(testConfig(s.vars), deps, s.runtime);
    await sc.start(new AbortController().signal);
    t.teardown(() => sc.stop());

    t.ok(sc.status().ready);
    t.equal(
      sc.status().summary,
      'sidecar pilot-agent (envoy epoch 0), 0 restarts',
      'auto picked pilot-agent',
    );
    const [pa] = byProgram(s.dirs.rec, 'pilot-agent');
    t.same(pa!.argv, [
      'proxy',
      '--proxyAdminPort',
      String(s.port),
      '--proxyLogLevel',
      'info',
      '--serviceCluster',
      'rawvm',
      '--discoveryAddress',
      'istio-pilot.istio-system:15011',
      '--controlPlaneAuthPolicy',
      'MUTUAL_TLS',
    ]);
    t.match(pa!.env, {
      INSTANCE_IP: '10.0.0.5',
      POD_NAME: 'vm-1',
      POD_NAMESPACE: 'bookinfo',
      ISTIO_META_NETWORK: 'n1',
      USER: runAs,
    });
    t.equal(pa!.env.NOTIFY_SOCKET, undefined);
    const [e1] = byProgram(s.dirs.rec, 'envoy');
    t.same(
      (e1!.node as { id: string }).id,
      NODE_ID,
      "pilot-agent's envoy got the service node built from the env",
    );

    deps.events.emit('certs-rotated', { certsDir: s.dirs.certs, generation: 'g2', notAfter: 0 });
    await new Promise((r) => setTimeout(r, 500));
    t.equal(
      byProgram(s.dirs.rec, 'pilot-agent').length,
      1,
      'rotation: pilot-agent is left alone (it watches the certs)',
    );
    t.ok(deps.records.some((r) => /pilot-agent watches them itself/.test(r.msg)));

    // pilot-agent dies without stopping its envoy: the supervisor must not leave that envoy behind.
    const crash = path.join(s.dirs.crash, 'pilot-agent');
    writeFileSync(crash, '');
    await waitFor('pilot-agent exits', () => !alive(pa!.pid));
    rmSync(crash);
    await waitFor('its envoy is gone too', () => !alive(e1!.pid), { timeoutMs: 5000 });
    await waitFor(
      'pilot-agent restarted and LIVE',
      () => byProgram(s.dirs.rec, 'pilot-agent').length === 2 && sc.status().ready,
    );
    t.equal(sc.status().summary, 'sidecar pilot-agent (envoy epoch 0), 1 restart');
    t.ok(
      sidecarLines(deps, /panic: crash requested/).some(
        (r) => r.level === 'error' && r.proxy === 'pilot-agent',
      ),
    );

    await sc.stop();
    t.same(
      records(s.dirs.rec).filter((r) => alive(r.pid)),
      [],
      'no pilot-agent or envoy left after stop',
    );
  },
);

void t.test(
  'reload: a changed envoy setting hot-restarts into a new epoch; an unchanged one does nothing',
  async (t) => {
    const s = await setup(t, 'envoy');
    const deps = testDeps({ throwOnFatal: true });
    const sc = createSidecar(testConfig(s.vars), deps, s.runtime);
    await sc.start(new AbortController().signal);
    t.teardown(() => sc.stop());
    await sc.reload(testConfig(s.vars));
    await new Promise((r) => setTimeout(r, 300));
    t.equal(byProgram(s.dirs.rec, 'envoy').length, 1, 'same configuration: nothing restarted');
    await sc.reload(testConfig({ ...s.vars, ISTIO_SERVICE: 'reviews' }));
    await waitFor(
      'epoch 1 LIVE',
      () => currentEpoch(sc)?.epoch === 1 && currentEpoch(sc)?.ready === true,
    );
    const e1 = byProgram(s.dirs.rec, 'envoy').find((r) => r.epoch === 1)!;
    t.equal(e1.argv[e1.argv.indexOf('--service-cluster') + 1], 'reviews');
    const boot = JSON.parse(readFileSync(path.join(s.dirs.cfg, 'envoy-rev1.json'), 'utf8'));
    t.equal(boot.node.cluster, 'reviews');
    await sc.stop();
  },
);

void t.test('child output is rate-limited with a suppression record', async (t) => {
  const s = await setup(t, 'envoy', { ISTIO_PROXY_LOG_LINES_PER_MINUTE: '10' });
  const deps = testDeps({ throwOnFatal: true });
  const sc = createSidecar(testConfig(s.vars), deps, {
    processEnv: { ...s.runtime.processEnv, FAKE_ENVOY_LOG_LINES: '200' },
  });
  await sc.start(new AbortController().signal);
  await sc.stop();
  const forwarded = deps.records.filter((r) => r.component === 'sidecar' && r.stream !== undefined);
  t.equal(forwarded.length, 10, 'only the limit is forwarded');
  const sup = deps.records.find((r) => typeof r.suppressed === 'number');
  t.ok(
    sup && (sup.suppressed as number) >= 190,
    `suppressed lines counted (${String(sup?.suppressed)})`,
  );
});

void t.test(
  'missing binaries give AGENT_E_SIDECAR_BINARY; SIDECAR_MODE=none gives no component',
  async (t) => {
    const empty = binBase(t, []);
    for (const mode of ['auto', 'envoy', 'pilot-agent']) {
      const sc = createSidecar(
        testConfig({ SIDECAR_MODE: mode, ISTIO_BIN_BASE: empty, ISTIO_SVC_IP: '10.0.0.5' }),
        testDeps({ throwOnFatal: true }),
      );
      await t.rejects(
        sc.start(new AbortController().signal),
        { code: 'AGENT_E_SIDECAR_BINARY' },
        `SIDECAR_MODE=${mode}`,
      );
    }
    const none = await createSidecarComponent(
      testConfig({ SIDECAR_MODE: 'none' }),
      testDeps({ throwOnFatal: true }),
    );
    t.equal(none, undefined);
    const e = await createSidecar(
      testConfig({ SIDECAR_MODE: 'auto', ISTIO_BIN_BASE: empty }),
      testDeps({ throwOnFatal: true }),
    )
      .start(new AbortController().signal)
      .catch((x: unknown) => x);
    t.ok(e instanceof AgentError && e.exitCode === 78, 'a configuration error: exit 78');
  },
);

void t.test(
  'a missing EXEC_USER gives AGENT_E_USER_UNKNOWN',
  { skip: !isRoot && 'needs root (no user switch otherwise)' },
  async (t) => {
    const s = await setup(t, 'envoy', { EXEC_USER: 'no-such-user-sidecar-test' });
    const sc = createSidecar(testConfig(s.vars), testDeps({ throwOnFatal: true }), s.runtime);
    await t.rejects(sc.start(new AbortController().signal), {
      code: 'AGENT_E_USER_UNKNOWN',
      message: /no-such-user-sidecar-test/,
    });
    t.same(records(s.dirs.rec), [], 'nothing was started');
  },
);
