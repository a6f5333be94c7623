// What to run: the refusals and notes of checks.ts, the plan pieces of plan.ts, and resolvePlan
// gathering its facts through a stand-in runtime (no I/O: every fact comes from the test).
import t from 'tap';
import { FakeClock } from '../../src/lib/clock';
import { AgentError } from '../../src/lib/errors';
import {
  checkCaptureUser,
  checkEnvoyVersion,
  checkPilotAgentCerts,
  checkSetpriv,
  checkUnshare,
  checkUser,
} from '../../src/sidecar/checks';
import type { HostFacts } from '../../src/sidecar/host';
import {
  launchSpec,
  resolvePlan,
  RUNTIME_DEFAULTS,
  type SidecarRuntime,
} from '../../src/sidecar/index';
import type { LaunchSpec } from '../../src/sidecar/launcher';
import {
  envoyBootstrap,
  needsHostFacts,
  usesTproxy,
  wantsPidNamespace,
  workloadIds,
  wrapOptions,
  type ChildUser,
} from '../../src/sidecar/plan';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';

const proxy: ChildUser = { name: 'istio-proxy', uid: 1337, gid: 1337, home: '/', shell: '/bin/sh' };
const root: ChildUser = { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof AgentError ? e.code : 'not an AgentError';
  }
  return undefined;
}

void t.test('checkUser: root refuses uid 0; otherwise a note when we are not EXEC_USER', (t) => {
  t.equal(checkUser(proxy, 'istio-proxy', true), undefined);
  t.equal(
    codeOf(() => checkUser(root, 'toor', true)),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(checkUser(proxy, 'istio-proxy', false), undefined);
  t.equal(checkUser(proxy, '1337', false), undefined, 'a uid names the user too');
  t.same(checkUser({ ...proxy, name: 'dev', uid: 1000 }, 'istio-proxy', false), {
    level: 'warn',
    fields: { execUser: 'istio-proxy', runAs: 'dev' },
    msg: 'not running as root: the sidecar runs as dev, not EXEC_USER=istio-proxy',
  });
  t.end();
});

void t.test('checkSetpriv: required as root, a warning otherwise', (t) => {
  t.equal(checkSetpriv('/usr/bin/setpriv', true), undefined);
  t.equal(checkSetpriv('/usr/bin/setpriv', false), undefined);
  t.equal(
    codeOf(() => checkSetpriv(undefined, true)),
    'AGENT_E_MISSING_TOOL',
  );
  t.match(checkSetpriv(undefined, false), { level: 'warn', msg: /will not be killed/ });
  t.end();
});

void t.test(
  'checkUnshare: debug under systemd (the unit reaps envoy), a warning elsewhere',
  (t) => {
    t.equal(checkUnshare('/usr/bin/unshare', false), undefined);
    t.match(checkUnshare(undefined, true), { level: 'debug', msg: /the systemd unit reaps it\)$/ });
    t.match(checkUnshare(undefined, false), {
      level: 'warn',
      msg: /outlive an agent killed by SIGKILL$/,
    });
    t.ok(wantsPidNamespace(true, 'pilot-agent'));
    t.notOk(wantsPidNamespace(false, 'pilot-agent'));
    t.notOk(wantsPidNamespace(true, 'envoy'));
    t.end();
  },
);

void t.test('checkCaptureUser: only when capture is on and ENVOY_USER is not EXEC_USER', (t) => {
  const c = testConfig({ ENVOY_USER: 'envoy', EXEC_USER: 'istio-proxy' });
  t.match(checkCaptureUser(c.capture, 'istio-proxy'), {
    level: 'warn',
    fields: { envoyUser: 'envoy', execUser: 'istio-proxy' },
    msg: /own traffic would be captured and loop/,
  });
  t.equal(checkCaptureUser(c.capture, 'envoy'), undefined);
  const off = testConfig({ ENVOY_USER: 'envoy', ISTIO_CAPTURE: 'false' });
  t.equal(checkCaptureUser(off.capture, 'istio-proxy'), undefined);
  t.end();
});

void t.test('checkEnvoyVersion and checkPilotAgentCerts', (t) => {
  t.equal(checkEnvoyVersion('/b/envoy', 'envoy version: x/1.8.0/Clean', [1, 8, 0]), undefined);
  t.same(checkEnvoyVersion('/b/envoy', undefined, undefined), {
    level: 'warn',
    fields: { binary: '/b/envoy', version: undefined },
    msg: "cannot tell /b/envoy's version; assuming a current envoy",
  });
  t.equal(checkPilotAgentCerts(testConfig({ CERTS_DIR: '/etc/certs/' })), undefined);
  t.equal(checkPilotAgentCerts(testConfig({ CERTS_DIR: '/x', ISTIO_CP_AUTH: 'NONE' })), undefined);
  t.match(checkPilotAgentCerts(testConfig({ CERTS_DIR: '/x' })), {
    level: 'warn',
    fields: { certsDir: '/x' },
    msg: 'pilot-agent reads its certificates from /etc/certs, but CERTS_DIR=/x',
  });
  t.end();
});

void t.test('workload ids: set values win; else the host; no address is a config error', (t) => {
  const facts: HostFacts = { primaryIp: '10.1.2.3', hostname: 'vm-7.example.org' };
  t.notOk(needsHostFacts({ svcIp: '10.0.0.5', podName: 'p' }));
  t.ok(needsHostFacts({ svcIp: '10.0.0.5', podName: undefined }));
  t.same(workloadIds({ svcIp: '10.0.0.5', podName: 'p' }, undefined), {
    svcIp: '10.0.0.5',
    podName: 'p',
  });
  t.same(workloadIds({ svcIp: undefined, podName: undefined }, facts), {
    svcIp: '10.1.2.3',
    podName: 'vm-7',
  });
  t.same(workloadIds({ svcIp: '10.0.0.5', podName: undefined }, undefined).podName, 'localhost');
  t.equal(
    codeOf(() =>
      workloadIds({ svcIp: undefined, podName: 'p' }, { ...facts, primaryIp: undefined }),
    ),
    'AGENT_E_CONFIG_VALUE',
  );
  t.end();
});

void t.test(
  'wrap options: switch and TPROXY capability only as root; PID namespace for pilot-agent',
  (t) => {
    const base = { setpriv: '/s', unshare: '/u', user: proxy, tproxy: true } as const;
    t.same(wrapOptions({ ...base, isRoot: true, mode: 'envoy' }), {
      setpriv: '/s',
      unshare: '/u',
      switchTo: { uid: 1337, gid: 1337 },
      ambientCaps: ['net_admin'],
      pidNamespace: false,
    });
    t.same(wrapOptions({ ...base, isRoot: false, mode: 'pilot-agent' }), {
      setpriv: '/s',
      unshare: '/u',
      switchTo: undefined,
      ambientCaps: [],
      pidNamespace: true,
    });
    t.same(wrapOptions({ ...base, isRoot: true, tproxy: false, mode: 'envoy' }).ambientCaps, []);
    t.ok(usesTproxy(testConfig({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' }).capture));
    t.notOk(usesTproxy(testConfig({}).capture));
    t.notOk(
      usesTproxy(
        testConfig({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_CAPTURE: 'false' }).capture,
      ),
    );
    t.end();
  },
);

void t.test(
  'envoy bootstrap input: Pilot host and port, SAN namespace, TLS only under mTLS',
  (t) => {
    const c = testConfig({ CERTS_DIR: '/c', ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' });
    const b = envoyBootstrap(c, 'node-1');
    t.same(b, {
      nodeId: 'node-1',
      cluster: 'rawvm',
      metadata: { INTERCEPTION_MODE: 'TPROXY' },
      adminPort: 15000,
      pilotHost: 'istio-pilot.istio-system',
      pilotPort: 15011,
      tls: {
        certChain: '/c/cert-chain.pem',
        privateKey: '/c/key.pem',
        rootCert: '/c/root-cert.pem',
        subjectAltNames: ['spiffe://cluster.local/ns/istio-system/sa/istio-pilot-service-account'],
      },
    });
    const plain = envoyBootstrap(testConfig({ ISTIO_CP_AUTH: 'NONE' }), 'n');
    t.equal(plain.tls, undefined);
    t.equal(plain.pilotPort, 15010);
    t.end();
  },
);

interface Fake {
  readonly rt: SidecarRuntime;
  readonly calls: string[];
}

/** A runtime whose every fact comes from `o`; `calls` lists what resolvePlan asked, in order. */
function fakeRuntime(o: {
  isRoot?: boolean;
  present?: readonly ('envoy' | 'pilot-agent')[];
  user?: ChildUser;
  tools?: readonly ('setpriv' | 'unshare')[];
  facts?: HostFacts;
  version?: string;
  processEnv?: NodeJS.ProcessEnv;
  untrusted?: boolean;
}): Fake {
  const calls: string[] = [];
  const rt: SidecarRuntime = {
    ...RUNTIME_DEFAULTS,
    launcher: {
      launch() {
        throw new Error('resolvePlan must not launch anything');
      },
    },
    admin: () => {
      throw new Error('resolvePlan must not reach the admin port');
    },
    isRoot: o.isRoot ?? true,
    processEnv: o.processEnv ?? { PATH: '/usr/bin' },
    hostFacts: () => {
      calls.push('hostFacts');
      return Promise.resolve(o.facts ?? { primaryIp: '10.9.9.9', hostname: 'host.example' });
    },
    lookupUser: (name) => {
      calls.push(`lookupUser ${name}`);
      return Promise.resolve(o.user ?? proxy);
    },
    currentUser: () => {
      calls.push('currentUser');
      return o.user ?? proxy;
    },
    findTool: (name) => {
      calls.push(`findTool ${name}`);
      return Promise.resolve(
        (o.tools ?? ['setpriv', 'unshare']).includes(name) ? `/usr/bin/${name}` : undefined,
      );
    },
    isExecutable: (file) => {
      calls.push(`isExecutable ${file}`);
      return Promise.resolve((o.present ?? ['envoy']).some((p) => file.endsWith(`/${p}`)));
    },
    checkTrusted: (file) => {
      calls.push(`checkTrusted ${file}`);
      return o.untrusted
        ? Promise.reject(new AgentError('AGENT_E_UNSAFE_PATH', `${file} is not root's`))
        : Promise.resolve();
    },
    envoyVersion: (binary, wrap) => {
      calls.push(
        `envoyVersion ${binary} pidNamespace=${wrap.pidNamespace} caps=${wrap.ambientCaps.join(',')}`,
      );
      return Promise.resolve(o.version);
    },
  };
  return { rt, calls };
}

const ENVOY_VARS = {
  SIDECAR_MODE: 'envoy',
  ISTIO_BIN_BASE: '/opt/istio',
  ISTIO_SVC_IP: '10.0.0.5',
  POD_NAME: 'vm-1',
  ISTIO_NAMESPACE: 'bookinfo',
  ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
};

void t.test(
  'resolvePlan, envoy as root: the facts asked in order, the plan, launchSpec',
  async (t) => {
    const deps = testDeps({ clock: new FakeClock(), throwOnFatal: true });
    const f = fakeRuntime({ version: ' envoy  version: abc/1.8.0/Clean/RELEASE \n' });
    const plan = await resolvePlan(testConfig(ENVOY_VARS), f.rt, deps.log);
    t.same(f.calls, [
      'isExecutable /opt/istio/pilot-agent',
      'isExecutable /opt/istio/envoy',
      'checkTrusted /opt/istio/envoy',
      'lookupUser istio-proxy',
      'findTool setpriv',
      'envoyVersion /opt/istio/envoy pidNamespace=false caps=',
    ]);
    t.match(plan, {
      mode: 'envoy',
      binary: '/opt/istio/envoy',
      user: proxy,
      svcIp: '10.0.0.5',
      podName: 'vm-1',
      serviceNode: 'sidecar~10.0.0.5~vm-1.bookinfo~bookinfo.svc.cluster.local',
      adminPort: 15000,
      compat: ['--max-obj-name-len', '189'],
      envoyVersion: 'envoy  version: abc/1.8.0/Clean/RELEASE',
      pilotAgentArgs: [],
      wrap: { setpriv: '/usr/bin/setpriv', unshare: undefined, ambientCaps: ['net_admin'] },
    });
    t.equal(plan.bootstrap?.metadata.INTERCEPTION_MODE, 'TPROXY');
    t.equal(plan.env.INSTANCE_IP, '10.0.0.5');
    t.same(deps.records, [], 'nothing to warn about');

    const spec: LaunchSpec = launchSpec(plan, 3, undefined);
    t.equal(spec.file, '/usr/bin/setpriv');
    t.same(spec.args.slice(spec.args.indexOf('--') + 1, spec.args.indexOf('--') + 6), [
      '/opt/istio/envoy',
      '-c',
      `${plan.configDir}/envoy-rev3.json`,
      '--restart-epoch',
      '3',
    ]);
    t.equal(spec.env, plan.env);
    t.notOk(spec.innerSignal);
  },
);

void t.test(
  'resolvePlan, pilot-agent as root under systemd: unshare looked up, notes logged',
  async (t) => {
    const deps = testDeps({ clock: new FakeClock(), throwOnFatal: true });
    const f = fakeRuntime({
      present: ['envoy', 'pilot-agent'],
      tools: ['setpriv'],
      processEnv: { INVOCATION_ID: 'x' },
    });
    const plan = await resolvePlan(
      testConfig({
        ...ENVOY_VARS,
        SIDECAR_MODE: 'auto',
        ISTIO_SVC_IP: '',
        CERTS_DIR: '/srv/certs',
        ISTIO_AGENT_FLAGS: '--proxyAdminPort 15999',
        ENVOY_USER: 'envoy',
      }),
      f.rt,
      deps.log,
    );
    t.same(f.calls.slice(2), [
      'checkTrusted /opt/istio/pilot-agent',
      'lookupUser istio-proxy',
      'findTool setpriv',
      'findTool unshare',
      'hostFacts',
    ]);
    t.equal(plan.mode, 'pilot-agent');
    t.equal(plan.adminPort, 15999, "pilot-agent's admin port from ISTIO_AGENT_FLAGS");
    t.equal(plan.svcIp, '10.9.9.9');
    t.equal(plan.bootstrap, undefined);
    t.same(plan.compat, []);
    t.ok(plan.wrap.pidNamespace);
    t.same(
      deps.records.map((r) => [r.level, r.component, r.msg.slice(0, 30)]),
      [
        ['debug', undefined, 'unshare (util-linux) is missin'],
        ['warn', undefined, 'ENVOY_USER=envoy (excluded fro'],
        ['warn', undefined, 'pilot-agent reads its certific'],
      ],
      'each note logged once, in the order found, at its level',
    );
    t.equal(deps.records[2]!.certsDir, '/srv/certs', 'with its fields');
  },
);

void t.test('resolvePlan: refusals come in the order the facts are gathered', async (t) => {
  const log = testDeps({ throwOnFatal: true }).log;
  const cfg = testConfig(ENVOY_VARS);
  await t.rejects(resolvePlan(cfg, fakeRuntime({ present: [] }).rt, log), {
    code: 'AGENT_E_SIDECAR_BINARY',
  });
  const untrusted = fakeRuntime({ untrusted: true, user: root, tools: [] });
  await t.rejects(resolvePlan(cfg, untrusted.rt, log), { code: 'AGENT_E_UNSAFE_PATH' });
  t.same(untrusted.calls.at(-1), 'checkTrusted /opt/istio/envoy', 'nothing asked after it');
  const asRoot = fakeRuntime({ user: root, tools: [] });
  await t.rejects(resolvePlan(cfg, asRoot.rt, log), { code: 'AGENT_E_CONFIG_VALUE' });
  t.same(asRoot.calls.at(-1), 'lookupUser istio-proxy');
  await t.rejects(resolvePlan(cfg, fakeRuntime({ tools: [] }).rt, log), {
    code: 'AGENT_E_MISSING_TOOL',
  });
  const noIp = fakeRuntime({ facts: { primaryIp: undefined, hostname: 'h' } });
  await t.rejects(resolvePlan(testConfig({ ...ENVOY_VARS, ISTIO_SVC_IP: '' }), noIp.rt, log), {
    code: 'AGENT_E_CONFIG_VALUE',
    message: /set ISTIO_SVC_IP/,
  });
});

void t.test(
  'resolvePlan, not root: our own user, a note before a later refusal is kept',
  async (t) => {
    const deps = testDeps({ throwOnFatal: true });
    const f = fakeRuntime({
      isRoot: false,
      user: { ...proxy, name: 'dev', uid: 1000 },
      tools: [],
      facts: { primaryIp: undefined, hostname: 'h' },
    });
    await t.rejects(resolvePlan(testConfig({ ...ENVOY_VARS, ISTIO_SVC_IP: '' }), f.rt, deps.log), {
      code: 'AGENT_E_CONFIG_VALUE',
    });
    t.same(f.calls.slice(3), ['currentUser', 'findTool setpriv', 'hostFacts']);
    t.same(
      deps.records.map((r) => r.msg.split(':')[0]),
      ['not running as root', 'setpriv with --pdeathsig not found'],
    );
  },
);
