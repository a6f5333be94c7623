import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { testRaw } from '../helpers/config';
import { parseDns, parseDnsServer } from '../../src/config/sections/dns';
import { buildConfig } from '../../src/config/load';
import { AgentError } from '../../src/lib/errors';
import { snapshot } from '../helpers/dns-root';
import { tmpDir } from '../helpers/tmp';

void t.test('defaults: off, cluster.local, /etc/dnsmasq.d, auto', (t) => {
  const d = parseDns(testRaw({}));
  t.same(d, {
    enabled: false,
    dnsServer: undefined,
    clusterDomain: 'cluster.local',
    pilotIp: undefined,
    citadelIp: undefined,
    mixerIp: undefined,
    dropInDir: '/etc/dnsmasq.d',
    resolver: 'auto',
  });
  t.end();
});

void t.test('on when any of the four address variables is set', (t) => {
  for (const k of ['ISTIO_DNS_SERVER', 'ISTIO_PILOT_IP', 'ISTIO_CITADEL_IP', 'ISTIO_MIXER_IP']) {
    t.equal(parseDns(testRaw({ [k]: '10.1.2.3' })).enabled, true, k);
  }
  t.equal(
    parseDns(testRaw({ ISTIO_CLUSTER_DOMAIN: 'corp.example', ISTIO_DNS_RESOLVER: 'none' })).enabled,
    false,
    'other variables alone do not turn it on',
  );
  t.equal(parseDns(testRaw({ ISTIO_PILOT_IP: '' })).enabled, false, 'an empty value is unset');
  t.end();
});

void t.test('the system namespace is the core one', (t) => {
  const c = buildConfig(testRaw({ ISTIO_SYSTEM_NAMESPACE: 'mesh', ISTIO_PILOT_IP: '10.0.0.1' }), {
    cluster: 'c',
    sidecar: 's',
  });
  t.equal(c.core.systemNamespace, 'mesh');
  t.equal(c.dns.pilotIp, '10.0.0.1');
  t.end();
});

void t.test('addresses: IPv4 and IPv6 accepted', (t) => {
  const d = parseDns(
    testRaw({
      ISTIO_PILOT_IP: 'fd00::7',
      ISTIO_CITADEL_IP: '10.0.0.8',
      ISTIO_MIXER_IP: '2001:db8::9',
    }),
  );
  t.equal(d.pilotIp, 'fd00::7');
  t.equal(d.citadelIp, '10.0.0.8');
  t.equal(d.mixerIp, '2001:db8::9');
  t.end();
});

void t.test('invalid addresses fail with file, line and variable', (t) => {
  const bad = [
    '10.0.0.999',
    '10.0.0',
    'istio-pilot',
    '010.0.0.1',
    'fe80::1%eth0',
    '0.0.0.0',
    '::',
    '10.0.0.1/32',
    'fd00::g',
  ];
  for (const key of ['ISTIO_PILOT_IP', 'ISTIO_CITADEL_IP', 'ISTIO_MIXER_IP', 'ISTIO_DNS_SERVER']) {
    for (const v of bad) {
      // A bad value is recorded (buildConfig throws them all together) and reads as unset.
      const raw = testRaw(
        { ISTIO_CLUSTER_DOMAIN: 'cluster.local', [key]: v },
        '/etc/x/cluster.env',
      );
      t.equal(parseDns(raw).enabled, false, `${key}=${v}: not used`);
      t.equal(raw.problems.length, 1, `${key}=${v} refused`);
      const err = raw.problems[0]!;
      t.ok(err instanceof AgentError);
      t.equal(err.code, 'AGENT_E_CONFIG_VALUE');
      t.equal(err.exitCode, 78);
      t.same(err.origin, { file: '/etc/x/cluster.env', line: 2, variable: key });
    }
  }
  t.end();
});

void t.test('ISTIO_DNS_SERVER forms', (t) => {
  t.same(parseDnsServer('10.0.0.10'), { address: '10.0.0.10', family: 4, port: 53 });
  t.same(parseDnsServer('10.0.0.10:5353'), { address: '10.0.0.10', family: 4, port: 5353 });
  t.same(parseDnsServer('10.0.0.10#5353'), { address: '10.0.0.10', family: 4, port: 5353 });
  t.same(parseDnsServer('fd00::a'), { address: 'fd00::a', family: 6, port: 53 });
  t.same(parseDnsServer('[fd00::a]'), { address: 'fd00::a', family: 6, port: 53 });
  t.same(parseDnsServer('[fd00::a]:5353'), { address: 'fd00::a', family: 6, port: 5353 });
  t.same(
    parseDnsServer('127.0.0.1:5353'),
    { address: '127.0.0.1', family: 4, port: 5353 },
    'a port-forward on loopback',
  );
  t.match(parseDnsServer('127.0.0.1'), /forward cluster names to itself/);
  t.match(parseDnsServer('::1'), /forward cluster names to itself/);
  t.match(parseDnsServer('10.0.0.10:0'), /invalid port/);
  t.match(parseDnsServer('10.0.0.10:70000'), /invalid port/);
  t.match(parseDnsServer('[10.0.0.10]:53'), /only an IPv6/);
  t.match(parseDnsServer('kube-dns:53'), /not an IPv4 or IPv6/);
  t.end();
});

void t.test('cluster domain, drop-in directory and resolver are validated', (t) => {
  t.equal(
    parseDns(testRaw({ ISTIO_CLUSTER_DOMAIN: 'cluster.local.' })).clusterDomain,
    'cluster.local',
    'a trailing dot is dropped',
  );
  for (const [k, v] of [
    ['ISTIO_CLUSTER_DOMAIN', 'bad_domain'],
    ['ISTIO_CLUSTER_DOMAIN', '-x.local'],
    ['ISTIO_DNSMASQ_DIR', 'etc/dnsmasq.d'],
    ['ISTIO_DNS_RESOLVER', 'networkmanager'],
  ] as const) {
    const raw = testRaw({ [k]: v });
    parseDns(raw);
    t.match(raw.problems, [{ code: 'AGENT_E_CONFIG_VALUE', origin: { variable: k } }], `${k}=${v}`);
  }
  for (const m of ['auto', 'dhclient', 'resolv.conf', 'resolved', 'resolvconf', 'none']) {
    t.equal(parseDns(testRaw({ ISTIO_DNS_RESOLVER: m })).resolver, m);
  }
  t.end();
});

// ---- through the CLI, from source: exit 78 with file:line: VARIABLE ----

const repo = path.resolve(__dirname, '../..');

function cli(
  args: string[],
  env: Record<string, string>,
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: repo,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

void t.test('dns plan exits 78 naming file, line and variable for each invalid value', (t) => {
  const dir = tmpDir(t, 'dns-cli-', { mode: 0o700 });
  const cases: [string, string][] = [
    ['ISTIO_PILOT_IP', '10.0.0.256'],
    ['ISTIO_CITADEL_IP', 'fd00::zz'],
    ['ISTIO_MIXER_IP', 'mixer.local'],
    ['ISTIO_DNS_SERVER', '127.0.0.1'],
    ['ISTIO_SYSTEM_NAMESPACE', 'Istio_System'],
  ];
  for (const [key, value] of cases) {
    const file = path.join(dir, `${key}.env`);
    writeFileSync(file, `# cluster.env\nISTIO_SERVICE_CIDR=10.0.0.0/16\n${key}=${value}\n`);
    const r = cli(['dns', 'plan'], {
      ISTIO_CLUSTER_CONFIG: file,
      ISTIO_SIDECAR_CONFIG: '/dev/null',
    });
    t.equal(r.code, 78, `${key}=${value}: exit 78`);
    t.match(r.stderr, `${file}:3: ${key}:`, `${key}: message names file:line: variable`);
    t.match(r.stderr, '[AGENT_E_CONFIG_VALUE]');
    t.equal(r.stdout, '', `${key}: nothing printed as a plan`);
  }
  t.end();
});

void t.test(
  'dns plan on a temp root prints the file and the resolver change and changes nothing',
  (t) => {
    const root = tmpDir(t, 'dns-cli-root-', { mode: 0o700 });
    mkdirSync(path.join(root, 'etc'), { recursive: true });
    writeFileSync(path.join(root, 'etc/resolv.conf'), 'nameserver 10.0.0.2\n');
    const env = path.join(root, 'cluster.env');
    writeFileSync(env, 'ISTIO_DNS_SERVER=10.96.0.10\nISTIO_PILOT_IP=fd00::7\n');
    const vars = { ISTIO_CLUSTER_CONFIG: env, ISTIO_SIDECAR_CONFIG: '/dev/null' };
    const before = snapshot(root);
    const r = cli(['dns', 'plan', '--root', root], vars);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, 'server=/svc.cluster.local/10.96.0.10');
    t.match(r.stdout, 'address=/istio-pilot.istio-system/fd00::7');
    t.match(r.stdout, 'resolver: resolv.conf');
    t.match(r.stdout, 'nameserver 127.0.0.1');
    t.match(r.stdout, 'dnsmasq is not installed', 'the temp root has no dnsmasq');
    const j = cli(['dns', 'plan', '--json', '--root', root], vars);
    t.equal(j.code, 0);
    const plan = JSON.parse(j.stdout);
    t.equal(plan.names, 3);
    t.equal(plan.dropIn.action, 'create');
    t.equal(plan.resolver.kind, 'resolv.conf');
    t.same(
      plan.resolver.edits.map((e: { path: string }) => e.path),
      ['/etc/resolv.conf'],
    );
    t.same(plan.dnsmasq, { installed: false, why: 'dnsmasq is not installed' });
    t.same(snapshot(root), before, 'plan wrote nothing');
    const h = cli(['dns', '--help'], vars);
    t.equal(h.code, 0);
    t.match(h.stdout, 'Usage: istio-node-agent dns <plan|apply|clean>');
    const u = cli(['dns', 'frobnicate'], vars);
    t.equal(u.code, 2, 'unknown subcommand is a usage error');
    t.end();
  },
);

void t.test('dns apply without a dnsmasq service: exit 78, nothing created under the root', (t) => {
  const root = tmpDir(t, 'dns-cli-root-', { mode: 0o700 });
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'etc/resolv.conf'), 'nameserver 10.0.0.2\n');
  const env = path.join(root, 'cluster.env');
  writeFileSync(env, 'ISTIO_DNS_SERVER=10.96.0.10\n');
  const before = snapshot(root);
  const r = cli(['dns', 'apply', '--root', root], {
    ISTIO_CLUSTER_CONFIG: env,
    ISTIO_SIDECAR_CONFIG: '/dev/null',
  });
  t.equal(r.code, 78, 'exit 78');
  t.match(r.stderr, '[AGENT_E_DNSMASQ_MISSING]');
  t.same(snapshot(root), before, 'no drop-in, no record, no state directory or lock');
  t.end();
});
