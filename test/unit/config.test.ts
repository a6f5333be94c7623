import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { parseCidr } from '../../src/config/net';
import { parseDuration } from '../../src/config/raw';
import { AgentError } from '../../src/lib/errors';
import { tmpDir } from '../helpers/tmp';

/** Both files (empty unless given) in a fresh directory. */
function files(cluster = '', sidecar = ''): NodeJS.ProcessEnv {
  const { env, dir } = paths();
  writeFileSync(path.join(dir, 'cluster.env'), cluster);
  writeFileSync(path.join(dir, 'sidecar.env'), sidecar);
  return env;
}

/** The two paths in a fresh directory, nothing written yet. */
function paths(): { env: NodeJS.ProcessEnv; dir: string } {
  const dir = tmpDir(t, 'cfg-', { mode: 0o700 });
  return {
    dir,
    env: {
      ISTIO_CLUSTER_CONFIG: path.join(dir, 'cluster.env'),
      ISTIO_SIDECAR_CONFIG: path.join(dir, 'sidecar.env'),
    },
  };
}

async function configError(env: NodeJS.ProcessEnv): Promise<AgentError> {
  try {
    await loadConfig(env);
  } catch (e) {
    if (e instanceof AgentError) return e;
    throw e;
  }
  throw new Error('expected a configuration error');
}

t.test('defaults with no files', async (t) => {
  const { config, warnings } = await loadConfig(files());
  t.equal(config.ca.address, 'istio-citadel:8060');
  t.equal(config.ca.env, 'onprem');
  t.equal(config.ca.api, 'HandleCSR');
  t.equal(config.ca.certsDir, '/etc/certs');
  t.equal(config.ca.certTtlMs, 90 * 86400_000);
  t.equal(config.ca.renewRatio, 0.5);
  t.equal(config.capture.envoyPort, 15001);
  t.equal(config.capture.mode, 'REDIRECT');
  t.same(config.capture.serviceCidrs, []);
  t.equal(config.sidecar.pilotAddress, 'istio-pilot.istio-system:15011');
  t.equal(config.dns.enabled, false);
  t.same(warnings, []);
});

t.test('precedence: cluster.env < sidecar.env < environment', async (t) => {
  const env = files(
    'CITADEL_ADDRESS=a:1\nCA_API=CreateCertificate\nISTIO_SERVICE=c\n',
    'CITADEL_ADDRESS=b:2\nISTIO_SERVICE=s\n',
  );
  const { config } = await loadConfig({ ...env, ISTIO_SERVICE: 'e' });
  t.equal(config.ca.api, 'CreateCertificate', 'only in cluster.env');
  t.equal(config.ca.address, 'b:2', 'sidecar.env over cluster.env');
  t.equal(config.sidecar.service, 'e', 'environment over both');
});

t.test('an empty value means the default', async (t) => {
  const { config } = await loadConfig(files('ENVOY_PORT=\nCITADEL_ADDRESS=""\n'));
  t.equal(config.capture.envoyPort, 15001);
  t.equal(config.ca.address, 'istio-citadel:8060');
});

t.test('lists, star and CIDRs', async (t) => {
  const { config } = await loadConfig(
    files(
      'ISTIO_SERVICE_CIDR="10.0.0.0/8, 192.168.0.0/16,fd00::/8"\nISTIO_INBOUND_PORTS=*\nISTIO_LOCAL_EXCLUDE_PORTS=15090,15021\n',
    ),
  );
  t.same(
    (config.capture.serviceCidrs as readonly { text: string }[]).map((c) => c.text),
    ['10.0.0.0/8', '192.168.0.0/16', 'fd00::/8'],
  );
  t.equal(config.capture.inboundPorts, '*');
  t.same(config.capture.localExcludePorts, [15090, 15021]);
});

t.test('unknown keys in a file warn with file and line', async (t) => {
  const { warnings } = await loadConfig(
    files('ISTIO_SERVICE_CIDR=*\nISTIO_TYPO=1\nISTIO_META_FOO=bar\nOTHER=1\n'),
  );
  t.equal(warnings.length, 2, warnings.join('\n'));
  t.match(warnings[0]!, /cluster\.env:2: unknown variable ISTIO_TYPO/);
  t.match(warnings[1]!, /cluster\.env:4: unknown variable OTHER/);
});

t.test('a bad value names file, line and variable, exit 78', async (t) => {
  const cases: [string, number, string, RegExp][] = [
    ['ISTIO_SERVICE_CIDR=10.0.0.0/33', 1, 'ISTIO_SERVICE_CIDR', /above the maximum \/32/],
    ['A=1\nISTIO_SERVICE_CIDR=010.1.1.1/32', 2, 'ISTIO_SERVICE_CIDR', /leading zero/],
    ['ISTIO_SERVICE_EXCLUDE_CIDR=10.0.0.0/8,bogus', 1, 'ISTIO_SERVICE_EXCLUDE_CIDR', /not a CIDR/],
    ['ISTIO_INBOUND_PORTS=80,70000', 1, 'ISTIO_INBOUND_PORTS', /not a port/],
    ['ISTIO_INBOUND_PORTS=0', 1, 'ISTIO_INBOUND_PORTS', /not a port/],
    ['ENVOY_PORT=abc', 1, 'ENVOY_PORT', /not a whole number/],
    [
      'ISTIO_INBOUND_INTERCEPTION_MODE=MAGIC',
      1,
      'ISTIO_INBOUND_INTERCEPTION_MODE',
      /REDIRECT, TPROXY/,
    ],
    ['CITADEL_ENV=aws', 1, 'CITADEL_ENV', /onprem, gcp, auto/],
    ['CA_API=Foo', 1, 'CA_API', /HandleCSR, CreateCertificate/],
    ['CITADEL_ADDRESS=no-port', 1, 'CITADEL_ADDRESS', /host:port/],
    ['WORKLOAD_CERT_TTL=forever', 1, 'WORKLOAD_CERT_TTL', /not a duration/],
    ['WORKLOAD_CERT_TTL=10s', 1, 'WORKLOAD_CERT_TTL', /shorter than the minimum/],
    ['CERT_RENEW_RATIO=1.5', 1, 'CERT_RENEW_RATIO', /out of range/],
    ['WORKLOAD_IDENTITY=default', 1, 'WORKLOAD_IDENTITY', /spiffe/],
    ['ISTIO_PILOT_IP=1.2.3', 1, 'ISTIO_PILOT_IP', /not an IPv4 or IPv6/],
    ['ISTIO_CP_AUTH=MAYBE', 1, 'ISTIO_CP_AUTH', /MUTUAL_TLS, NONE/],
    ['ISTIO_CAPTURE=perhaps', 1, 'ISTIO_CAPTURE', /not a boolean/],
    ['ISTIO_NAMESPACE=Bad_NS', 1, 'ISTIO_NAMESPACE', /DNS label/],
  ];
  for (const [text, line, variable, msg] of cases) {
    const env = files(text);
    const err = await configError(env);
    t.equal(err.code, 'AGENT_E_CONFIG_VALUE', text);
    t.equal(err.exitCode, 78);
    t.same(err.origin, { file: env.ISTIO_CLUSTER_CONFIG, line, variable }, `${text}: origin`);
    t.match(err.message, msg, `${text}: message`);
  }
});

t.test('a bad value from the environment says so', async (t) => {
  const err = await configError({ ...files(), ENVOY_PORT: '99999' });
  t.same(err.origin, { file: 'environment', line: 0, variable: 'ENVOY_PORT' });
  t.match(
    err.toLine(),
    /^environment: ENVOY_PORT: 99999 is out of range 1\.\.65535 \[AGENT_E_CONFIG_VALUE\]$/,
  );
});

t.test('an unreadable file is an error; a missing one is not', async (t) => {
  const env = files('A=1');
  if (process.getuid?.() === 0) {
    // root reads any file; a directory in its place is not a configuration file
    const dirEnv = paths().env;
    mkdirSync(dirEnv.ISTIO_CLUSTER_CONFIG!);
    writeFileSync(dirEnv.ISTIO_SIDECAR_CONFIG!, '');
    const err = await configError(dirEnv);
    t.equal(err.code, 'AGENT_E_UNSAFE_PATH');
    t.match(err.message, /is a directory, not a regular file/);
    t.equal(err.exitCode, 78);
  } else {
    chmodSync(env.ISTIO_CLUSTER_CONFIG!, 0);
    const err = await configError(env);
    t.equal(err.code, 'AGENT_E_CONFIG_READ');
  }
  await t.resolves(loadConfig(files()));
});

t.test('a zone index is refused, not silently dropped', async (t) => {
  t.match(parseCidr('fe80::1%eth0/64'), /zone index \(%eth0\)/);
  const err = await configError({ ...files(), ISTIO_SVC_IP: 'fe80::1%eth0' });
  t.match(err.toLine(), /ISTIO_SVC_IP: "fe80::1%eth0" has an IPv6 zone index/);
});

t.test('a FIFO, a symlink or bad UTF-8 as a config file: exit 78 naming the file', async (t) => {
  const fifo = paths().env;
  execFileSync('mkfifo', [fifo.ISTIO_CLUSTER_CONFIG!]);
  const e1 = await configError(fifo);
  t.equal(e1.exitCode, 78, 'a FIFO does not hang the agent');
  t.match(e1.toLine(), /cluster\.env is a FIFO, not a regular file/);

  const link = paths().env;
  writeFileSync(link.ISTIO_SIDECAR_CONFIG!, 'A=1\n');
  execFileSync('ln', ['-s', link.ISTIO_SIDECAR_CONFIG!, link.ISTIO_CLUSTER_CONFIG!]);
  const e2 = await configError(link);
  t.equal(e2.code, 'AGENT_E_UNSAFE_PATH');
  t.match(e2.message, /cluster\.env is a symlink/);

  const utf8 = files(undefined, '');
  writeFileSync(utf8.ISTIO_SIDECAR_CONFIG!, Buffer.from('A=1\n# ok\nB=\xff\xfe\n', 'latin1'));
  const e3 = await configError(utf8);
  t.equal(e3.code, 'AGENT_E_CONFIG_SYNTAX');
  t.match(e3.toLine(), /sidecar\.env:3: .*not valid UTF-8/);
});

t.test('a config file others can write is refused, with the fix', async (t) => {
  const env = files('SIDECAR_MODE=none\n');
  chmodSync(env.ISTIO_CLUSTER_CONFIG!, 0o666);
  const err = await configError(env);
  t.equal(err.code, 'AGENT_E_UNSAFE_PATH');
  t.equal(err.exitCode, 78);
  t.match(err.toLine(), /cluster\.env is writable by every user \(mode 0666\).*chmod go-w/);
  const dirEnv = files('SIDECAR_MODE=none\n');
  chmodSync(path.dirname(dirEnv.ISTIO_CLUSTER_CONFIG!), 0o775);
  t.match((await configError(dirEnv)).message, /is writable by its group \(mode 0775\)/);
});

t.test('EXEC_USER may not be root', async (t) => {
  for (const u of ['root', '0', '000']) {
    const err = await configError({ ...files(), EXEC_USER: u });
    t.match(err.toLine(), /EXEC_USER: the sidecar must not run as root/, u);
  }
});

t.test('parseCidr', async (t) => {
  t.match(parseCidr('10.0.0.0/8'), { family: 4, prefix: 8, text: '10.0.0.0/8' });
  t.match(parseCidr('10.1.2.3'), { family: 4, prefix: 32, text: '10.1.2.3/32' });
  t.match(parseCidr('fd00::/8'), { family: 6, prefix: 8 });
  t.match(parseCidr('::1'), { family: 6, prefix: 128 });
  for (const bad of [
    '10.0.0.0/33',
    '010.1.1.1',
    '10.0.0/8',
    '1.2.3.4/-1',
    '1.2.3.4/',
    'fd00::/129',
    'x/8',
    '',
    'fe80::1%eth0/64',
  ]) {
    t.type(parseCidr(bad), 'string', `${bad} refused`);
  }
});

t.test('parseDuration', async (t) => {
  t.equal(parseDuration('90'), 90_000);
  t.equal(parseDuration('2160h'), 2160 * 3600_000);
  t.equal(parseDuration('1h30m'), 5400_000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('2d'), 2 * 86400_000);
  t.equal(parseDuration('1x'), undefined);
  t.equal(parseDuration('h'), undefined);
  t.equal(parseDuration(''), undefined);
});
