import t from 'tap';
import { RawEnv } from '../../src/config/raw';
import { buildConfig } from '../../src/config/load';
import type { AgentConfig } from '../../src/config/types';
import { AgentError } from '../../src/lib/errors';
import {
  adminPortFromAgentFlags,
  childEnv,
  chooseMode,
  compatFlags,
  controlPlaneNamespace,
  envoyArgs,
  nodeMetadata,
  parseEnvoyVersion,
  pilotAgentArgs,
  pilotSan,
  pilotXdsPort,
  serviceNode,
  splitHostPort,
} from '../../src/sidecar/plan';
import { wrapCommand } from '../../src/sidecar/wrap';
import { defaultRouteInterface, primaryAddress, shortHostname } from '../../src/sidecar/host';
import { parsePasswdLine } from '../../src/host/users';
import { permits } from '../../src/sidecar/access';

function config(vars: Record<string, string>): AgentConfig {
  const raw = new RawEnv();
  for (const [k, v] of Object.entries(vars)) raw.set(k, v, 'sidecar.env', 1);
  return buildConfig(raw, { cluster: 'c', sidecar: 's' });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof AgentError ? e.code : 'not an AgentError';
  }
  return undefined;
}

void t.test('pilot-agent argv is 1.0.1 istio-start.sh: defaults', (t) => {
  const c = config({}).sidecar;
  t.same(pilotAgentArgs(c), [
    'proxy',
    '--serviceCluster',
    'rawvm',
    '--discoveryAddress',
    'istio-pilot.istio-system:15011',
    '--controlPlaneAuthPolicy',
    'MUTUAL_TLS',
  ]);
  t.end();
});

void t.test('pilot-agent argv: flags first, overrides, ISTIO_CP_AUTH=NONE, PILOT_ADDRESS', (t) => {
  const c = config({
    ISTIO_AGENT_FLAGS: '  --proxyLogLevel debug\t--concurrency 2 ',
    ISTIO_SERVICE: 'ratings',
    ISTIO_CP_AUTH: 'NONE',
    ISTIO_SYSTEM_NAMESPACE: 'mesh',
    ISTIO_PILOT_PORT: '15010',
  }).sidecar;
  t.same(pilotAgentArgs(c), [
    'proxy',
    '--proxyLogLevel',
    'debug',
    '--concurrency',
    '2',
    '--serviceCluster',
    'ratings',
    '--discoveryAddress',
    'istio-pilot.mesh:15010',
    '--controlPlaneAuthPolicy',
    'NONE',
  ]);
  const c2 = config({ PILOT_ADDRESS: '10.0.0.9:15011', ISTIO_PILOT_PORT: '9' }).sidecar;
  t.equal(pilotAgentArgs(c2)[2 + 2], '10.0.0.9:15011');
  t.end();
});

void t.test('config: refused values name the variable', (t) => {
  t.equal(
    codeOf(() => config({ ISTIO_CP_AUTH: 'mTLS' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ ISTIO_CP_AUTH: '--controlPlaneAuthPolicy MUTUAL_TLS' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ PILOT_ADDRESS: 'istio-pilot' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ PILOT_ADDRESS: 'istio-pilot:99999' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ SIDECAR_MODE: 'docker' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ POD_NAME: 'a~b' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ ISTIO_PROXY_LOG_LEVEL: 'loud' })),
    'AGENT_E_CONFIG_VALUE',
  );
  t.equal(
    codeOf(() => config({ ISTIO_SVC_IP: '127.0.1.300' })),
    'AGENT_E_CONFIG_VALUE',
  );
  try {
    config({ ISTIO_CP_AUTH: 'tls' });
  } catch (e) {
    t.match((e as AgentError).toLine(), /^sidecar\.env:1: ISTIO_CP_AUTH: /);
  }
  t.equal(
    codeOf(() => config({ PILOT_ADDRESS: '[fd00::1]:15010', ISTIO_PROXY_LOG_LEVEL: 'DEBUG' })),
    undefined,
  );
  t.end();
});

void t.test('config: defaults and ISTIO_META_*', (t) => {
  const c = config({
    ISTIO_META_INTERCEPTION_MODE: 'TPROXY',
    ISTIO_META_NETWORK: 'vpc-1',
    ISTIO_META_: 'x',
  }).sidecar;
  t.same(c.metadata, { INTERCEPTION_MODE: 'TPROXY', NETWORK: 'vpc-1' });
  t.equal(c.mode, 'auto');
  t.equal(c.execUser, 'istio-proxy');
  t.equal(c.controlPlaneAuth, 'MUTUAL_TLS');
  t.equal(
    c.configDir,
    '/var/lib/istio/agent/envoy',
    'the bootstrap goes to a directory of the agent (root), under its state directory',
  );
  t.equal(c.adminPort, 15000);
  t.equal(c.proxyLogLevel, 'warning');
  t.equal(c.svcIp, undefined);
  t.equal(c.podName, undefined);
  t.equal(c.readyTimeoutMs, 30_000);
  t.end();
});

void t.test('mode: explicit, auto, and the documented error when missing', (t) => {
  t.equal(chooseMode('auto', { pilotAgent: true, envoy: true }, '/b'), 'pilot-agent');
  t.equal(chooseMode('auto', { pilotAgent: false, envoy: true }, '/b'), 'envoy');
  t.equal(chooseMode('envoy', { pilotAgent: true, envoy: true }, '/b'), 'envoy');
  t.equal(chooseMode('none', { pilotAgent: false, envoy: false }, '/b'), 'none');
  t.equal(
    codeOf(() => chooseMode('auto', { pilotAgent: false, envoy: false }, '/b')),
    'AGENT_E_SIDECAR_BINARY',
  );
  t.equal(
    codeOf(() => chooseMode('envoy', { pilotAgent: true, envoy: false }, '/b')),
    'AGENT_E_SIDECAR_BINARY',
  );
  t.throws(
    () => chooseMode('auto', { pilotAgent: false, envoy: false }, '/opt/istio'),
    /neither pilot-agent nor envoy .*\/opt\/istio/,
  );
  t.end();
});

void t.test('service node and Pilot SAN namespace rule (pilot-agent 1.0)', (t) => {
  t.equal(
    serviceNode('10.150.0.5', 'demo-vm-1', 'default'),
    'sidecar~10.150.0.5~demo-vm-1.default~default.svc.cluster.local',
  );
  t.equal(controlPlaneNamespace('istio-pilot', 'bookinfo', 'istio-system'), 'bookinfo');
  t.equal(controlPlaneNamespace('istio-pilot.mesh-cp', 'bookinfo', 'istio-system'), 'mesh-cp');
  t.equal(
    controlPlaneNamespace('istio-pilot.istio-system.svc.cluster.local', 'bookinfo', 'cp'),
    'cp',
  );
  t.equal(controlPlaneNamespace('10.0.0.1', 'bookinfo', 'cp'), 'cp');
  t.equal(controlPlaneNamespace('fd00::1', 'bookinfo', 'cp'), 'cp');
  t.equal(
    pilotSan('istio-system'),
    'spiffe://cluster.local/ns/istio-system/sa/istio-pilot-service-account',
  );
  t.equal(pilotXdsPort('MUTUAL_TLS'), 15011);
  t.equal(pilotXdsPort('NONE'), 15010);
  t.same(splitHostPort('[fd00::1]:15011'), { host: 'fd00::1', port: 15011 });
  t.same(splitHostPort('istio-pilot.istio-system:8080'), {
    host: 'istio-pilot.istio-system',
    port: 8080,
  });
  t.end();
});

void t.test('admin port from ISTIO_AGENT_FLAGS', (t) => {
  t.equal(adminPortFromAgentFlags([], 15000), 15000);
  t.equal(adminPortFromAgentFlags(['--proxyAdminPort', '15100'], 15000), 15100);
  t.equal(adminPortFromAgentFlags(['-proxyAdminPort=15200'], 15000), 15200);
  t.equal(adminPortFromAgentFlags(['--proxyAdminPort', 'x'], 15000), 15000);
  t.end();
});

void t.test('envoy argv and version-dependent compat flags', (t) => {
  const base = {
    configFile: '/etc/istio/proxy/envoy-rev3.json',
    epoch: 3,
    drainSeconds: 2,
    parentShutdownSeconds: 3,
    serviceCluster: 'rawvm',
    serviceNode: 'sidecar~10.0.0.5~vm.default~default.svc.cluster.local',
    logLevel: 'warning',
    concurrency: 0,
    compat: [],
  };
  t.same(envoyArgs(base), [
    '-c',
    '/etc/istio/proxy/envoy-rev3.json',
    '--restart-epoch',
    '3',
    '--drain-time-s',
    '2',
    '--parent-shutdown-time-s',
    '3',
    '--service-cluster',
    'rawvm',
    '--service-node',
    'sidecar~10.0.0.5~vm.default~default.svc.cluster.local',
    '-l',
    'warning',
  ]);
  t.same(envoyArgs({ ...base, concurrency: 2, compat: ['--max-obj-name-len', '189'] }).slice(-4), [
    '--concurrency',
    '2',
    '--max-obj-name-len',
    '189',
  ]);
  const v18 = parseEnvoyVersion('envoy  version: 0e1b.../1.8.0-dev/Clean/RELEASE/BoringSSL');
  t.same(v18, [1, 8, 0]);
  t.same(compatFlags(v18), ['--max-obj-name-len', '189']);
  t.same(compatFlags(parseEnvoyVersion('envoy  version: abc/1.28.1/Clean/RELEASE/BoringSSL')), []);
  t.same(compatFlags(undefined), []);
  t.equal(parseEnvoyVersion('garbage'), undefined);
  t.end();
});

void t.test('node metadata: ISTIO_META_* plus INTERCEPTION_MODE under TPROXY', (t) => {
  t.same(nodeMetadata({ A: '1' }, false), { A: '1' });
  t.same(nodeMetadata({ A: '1' }, true), { A: '1', INTERCEPTION_MODE: 'TPROXY' });
  t.same(nodeMetadata({ INTERCEPTION_MODE: 'REDIRECT' }, true), { INTERCEPTION_MODE: 'REDIRECT' });
  t.end();
});

void t.test(
  'child environment: su-like user vars, pod vars, metadata, no systemd protocol vars',
  (t) => {
    const user = {
      name: 'istio-proxy',
      uid: 998,
      gid: 997,
      home: '/var/lib/istio',
      shell: '/bin/false',
    };
    const env = childEnv(
      {
        PATH: '/usr/bin',
        LANG: 'C.UTF-8',
        NOTIFY_SOCKET: '/run/systemd/notify',
        WATCHDOG_USEC: '1',
        JOURNAL_STREAM: '8:1',
        HOME: '/root',
        USER: 'root',
        CUSTOM: 'kept',
      },
      user,
      { ip: '10.0.0.5', podName: 'vm1', namespace: 'ns1' },
      { NETWORK: 'n1' },
    );
    t.same(env, {
      PATH: '/usr/bin',
      LANG: 'C.UTF-8',
      HOME: '/var/lib/istio',
      USER: 'istio-proxy',
      LOGNAME: 'istio-proxy',
      SHELL: '/bin/false',
      CUSTOM: 'kept',
      ISTIO_META_NETWORK: 'n1',
      INSTANCE_IP: '10.0.0.5',
      POD_NAME: 'vm1',
      POD_NAMESPACE: 'ns1',
    });
    t.ok(
      childEnv({}, user, { ip: 'x', podName: 'y', namespace: 'z' }, {}).PATH,
      'a PATH even when the agent has none',
    );
    t.end();
  },
);

void t.test(
  'wrapping: setpriv as root, pid namespace for pilot-agent, pdeathsig when not root',
  (t) => {
    const root = wrapCommand('/usr/local/bin/envoy', ['-c', 'f'], {
      setpriv: '/usr/bin/setpriv',
      unshare: undefined,
      switchTo: { uid: 998, gid: 997 },
      ambientCaps: [],
      pidNamespace: false,
    });
    t.same(root, {
      file: '/usr/bin/setpriv',
      args: [
        '--reuid',
        '998',
        '--regid',
        '997',
        '--clear-groups',
        '--pdeathsig',
        'SIGKILL',
        '--',
        '/usr/local/bin/envoy',
        '-c',
        'f',
      ],
      innerSignal: false,
      pdeathsig: true,
    });
    const tproxy = wrapCommand('/b/envoy', [], {
      setpriv: '/usr/bin/setpriv',
      unshare: undefined,
      switchTo: { uid: 998, gid: 997 },
      ambientCaps: ['net_admin'],
      pidNamespace: false,
    });
    t.match(
      tproxy.args.join(' '),
      /--clear-groups --inh-caps \+net_admin --ambient-caps \+net_admin --pdeathsig SIGKILL --/,
    );
    const pa = wrapCommand('/b/pilot-agent', ['proxy'], {
      setpriv: '/usr/bin/setpriv',
      unshare: '/usr/bin/unshare',
      switchTo: { uid: 998, gid: 997 },
      ambientCaps: [],
      pidNamespace: true,
    });
    t.same(pa.args, [
      '--pdeathsig',
      'SIGKILL',
      '--',
      '/usr/bin/unshare',
      '--pid',
      '--fork',
      '--kill-child=SIGKILL',
      '--',
      '/usr/bin/setpriv',
      '--reuid',
      '998',
      '--regid',
      '997',
      '--clear-groups',
      '--pdeathsig',
      'SIGKILL',
      '--',
      '/b/pilot-agent',
      'proxy',
    ]);
    t.equal(pa.innerSignal, true);
    const user = wrapCommand('/b/envoy', ['x'], {
      setpriv: '/usr/bin/setpriv',
      unshare: undefined,
      switchTo: undefined,
      ambientCaps: [],
      pidNamespace: true,
    });
    t.same(user.args, ['--pdeathsig', 'SIGKILL', '--', '/b/envoy', 'x']);
    const bare = wrapCommand('/b/envoy', ['x'], {
      setpriv: undefined,
      unshare: undefined,
      switchTo: undefined,
      ambientCaps: [],
      pidNamespace: false,
    });
    t.same(bare, { file: '/b/envoy', args: ['x'], innerSignal: false, pdeathsig: false });
    t.end();
  },
);

void t.test('primary address: the default route interface, never loopback or 127.0.1.1', (t) => {
  const route = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
    'eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n');
  t.equal(defaultRouteInterface(route), 'eth0');
  const v4 = (address: string, internal = false) =>
    ({ address, family: 'IPv4', internal, netmask: '', mac: '', cidr: null }) as const;
  const v6 = (address: string) =>
    ({
      address,
      family: 'IPv6',
      internal: false,
      netmask: '',
      mac: '',
      cidr: null,
      scopeid: 0,
    }) as const;
  const ifaces = {
    lo: [v4('127.0.0.1', true)],
    docker0: [v4('172.17.0.1')],
    eth0: [v6('fe80::1'), v4('192.0.2.2')],
    eth1: [v4('192.168.2.5')],
  };
  t.equal(primaryAddress(route, ifaces), '192.0.2.2');
  t.equal(primaryAddress(undefined, { lo: [v4('127.0.1.1')], eth0: [v4('10.1.2.3')] }), '10.1.2.3');
  t.equal(
    primaryAddress('', { lo: [v4('127.0.0.1', true)], eth0: [v6('fe80::2'), v6('2001:db8::5')] }),
    '2001:db8::5',
  );
  t.equal(primaryAddress('', { lo: [v4('127.0.0.1', true)], x: [v4('127.0.1.1')] }), undefined);
  t.equal(shortHostname('vm-1.c.project.internal'), 'vm-1');
  t.end();
});

void t.test('passwd lines', (t) => {
  t.same(parsePasswdLine('istio-proxy:x:998:997::/var/lib/istio:/bin/sh\n'), {
    name: 'istio-proxy',
    uid: 998,
    gid: 997,
    home: '/var/lib/istio',
    shell: '/bin/sh',
  });
  t.equal(parsePasswdLine('broken'), undefined);
  t.end();
});

void t.test('file access as EXEC_USER: owner, group, other bits; root passes', (t) => {
  const u = { uid: 998, gid: 997 };
  t.ok(permits({ mode: 0o40700, uid: 998, gid: 0 }, u, 1), 'owner may search 0700');
  t.notOk(permits({ mode: 0o40700, uid: 0, gid: 0 }, u, 1), "root's 0700 directory is closed");
  t.ok(permits({ mode: 0o40750, uid: 0, gid: 997 }, u, 1), 'group may search 0750');
  t.notOk(
    permits({ mode: 0o100604, uid: 0, gid: 997 }, u, 4),
    'group bits decide for the group, not other',
  );
  t.ok(permits({ mode: 0o100644, uid: 0, gid: 0 }, u, 4));
  t.ok(permits({ mode: 0o100600, uid: 5, gid: 5 }, { uid: 0, gid: 0 }, 4));
  t.end();
});
