import t from 'tap';
import {
  bundleFiles,
  bundleTar,
  certFiles,
  renderInstallText,
  renderSidecarEnv,
  sidecarEnvEntries,
} from '../../src/cluster/bundle';
import {
  DEFAULT_CP_AUTH,
  clusterEnvEntries,
  isCpAuth,
  renderClusterEnv,
} from '../../src/cluster/env';
import { checkAgentAccepts, quoteEnvValue, renderEnvFile } from '../../src/cluster/envfile';
import { dnsEntries, hostPort, renderKubedns10, type IlbAddress } from '../../src/cluster/ilb';
import { parseEnvFile } from '../../src/config/env-file';
import { buildConfig } from '../../src/config/load';
import { RawEnv } from '../../src/config/raw';

const TARGET = { context: 'prod', server: 'https://10.0.0.1' };
const ilb = (
  role: IlbAddress['role'],
  ip: string,
  port: number,
  from: string,
  given = false,
): IlbAddress => ({
  role,
  ip,
  port,
  from,
  given,
});
const ADDRESSES = {
  dns: ilb('dns', '10.128.0.10', 53, 'kube-system/dns-ilb'),
  pilot: ilb('pilot', '10.128.0.7', 15011, 'istio-system/istio-pilot-ilb'),
  citadel: ilb('citadel', '10.128.0.8', 8060, 'istio-system/citadel-ilb'),
  mixer: ilb('mixer', '10.128.0.9', 15004, 'istio-system/mixer-ilb'),
};

function parse(text: string): Record<string, string> {
  return Object.fromEntries(parseEnvFile(text, 'x').map((e) => [e.key, e.value]));
}

void t.test(
  'cluster.env: every variable with its source above it, and the agent reads it back',
  async (t) => {
    const entries = clusterEnvEntries({
      serviceCidr: {
        cidrs: ['10.96.0.0/12', 'fd00:10:96::/112'],
        source: "the cluster's service range: ServiceCIDR kubernetes (networking.k8s.io/v1)",
        notes: [],
      },
      istioNamespace: 'istio-system',
      cpAuth: 'MUTUAL_TLS',
      cpAuthGiven: false,
      addresses: ADDRESSES,
      dns: true,
    });
    const text = renderClusterEnv(entries, TARGET);
    t.same(parse(text), {
      ISTIO_SERVICE_CIDR: '10.96.0.0/12,fd00:10:96::/112',
      ISTIO_SYSTEM_NAMESPACE: 'istio-system',
      ISTIO_CP_AUTH: 'MUTUAL_TLS',
      CITADEL_ADDRESS: '10.128.0.8:8060',
      ISTIO_DNS_SERVER: '10.128.0.10',
      ISTIO_PILOT_IP: '10.128.0.7',
      ISTIO_CITADEL_IP: '10.128.0.8',
      ISTIO_MIXER_IP: '10.128.0.9',
    });
    const lines = text.split('\n');
    for (const e of entries) {
      const i = lines.indexOf(`${e.key}=${quoteEnvValue(e.value)}`);
      t.ok(i > 0, `${e.key} is there`);
      t.match(lines[i - 1], /^# \S/, `${e.key} has a comment line above`);
    }
    t.match(
      text,
      /# the cluster's service range: ServiceCIDR kubernetes \(networking\.k8s\.io\/v1\)\nISTIO_SERVICE_CIDR=/,
    );
    t.match(text, /load-balancer address and port of istio-system\/citadel-ilb/);
    t.match(text, /^# cluster\.env for istio-node-agent/);
    t.match(text, /context "prod" \(https:\/\/10\.0\.0\.1\)/);

    // The agent's own configuration from this file: what `run` would use.
    const raw = new RawEnv();
    for (const e of parseEnvFile(text, 'cluster.env'))
      raw.set(e.key, e.value, 'cluster.env', e.line);
    const cfg = buildConfig(raw, { cluster: 'cluster.env', sidecar: '' });
    t.equal(cfg.ca.address, '10.128.0.8:8060');
    t.equal(cfg.dns.enabled, true);
    t.equal(cfg.dns.pilotIp, '10.128.0.7');
    t.same(cfg.dns.dnsServer, { address: '10.128.0.10', family: 4, port: 53 });
  },
);

void t.test(
  'cluster.env: --citadel-address and given addresses say so; --no-dns leaves DNS out',
  async (t) => {
    const base = {
      serviceCidr: { cidrs: ['10.0.0.0/16'], source: 'given with --service-cidr', notes: [] },
      istioNamespace: 'mesh',
      cpAuth: 'NONE' as const,
      cpAuthGiven: true,
    };
    const entries = clusterEnvEntries({
      ...base,
      citadelAddress: 'citadel.example:8060',
      addresses: { pilot: ilb('pilot', 'fd00::7', 15011, '--pilot-ip', true) },
      dns: true,
    });
    const vars = Object.fromEntries(entries.map((e) => [e.key, e]));
    t.equal(vars.CITADEL_ADDRESS!.value, 'citadel.example:8060');
    t.match(vars.CITADEL_ADDRESS!.source, /--citadel-address/);
    t.match(vars.ISTIO_PILOT_IP!.source, /given with --pilot-ip/);
    t.match(vars.ISTIO_CP_AUTH!.source, /--cp-auth/);
    t.notOk(vars.ISTIO_DNS_SERVER);
    const noDns = clusterEnvEntries({ ...base, addresses: ADDRESSES, dns: false });
    t.same(
      noDns.map((e) => e.key),
      ['ISTIO_SERVICE_CIDR', 'ISTIO_SYSTEM_NAMESPACE', 'ISTIO_CP_AUTH', 'CITADEL_ADDRESS'],
      '--no-dns: Citadel still, no DNS variables',
    );
    renderClusterEnv(entries, TARGET); // accepted by the agent
  },
);

void t.test('DNS variables: a kube-dns port other than 53, IPv6 brackets', async (t) => {
  t.equal(hostPort('10.0.0.1', 53, 53), '10.0.0.1');
  t.equal(hostPort('10.0.0.1', 5353, 53), '10.0.0.1:5353');
  t.equal(hostPort('fd00::a', 5353, 53), '[fd00::a]:5353');
  t.equal(hostPort('fd00::a', 8060), '[fd00::a]:8060');
  const e = dnsEntries({ dns: ilb('dns', 'fd00::a', 5353, 'kube-system/dns-ilb') });
  t.same(
    e.map((x) => [x.key, x.value]),
    [['ISTIO_DNS_SERVER', '[fd00::a]:5353']],
  );
  checkAgentAccepts([{ name: 'cluster.env', text: renderEnvFile([], e) }]);
});

void t.test("Istio 1.0's kubedns file, line for line", async (t) => {
  const text = renderKubedns10(ADDRESSES, 'istio-system', 'cluster.local');
  const records = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  t.same(records, [
    'server=/svc.cluster.local/10.128.0.10',
    'address=/istio-policy/10.128.0.9',
    'address=/istio-telemetry/10.128.0.9',
    'address=/istio-pilot/10.128.0.7',
    'address=/istio-citadel/10.128.0.8',
    'address=/istio-ca/10.128.0.8',
    'address=/istio-policy.istio-system/10.128.0.9',
    'address=/istio-telemetry.istio-system/10.128.0.9',
    'address=/istio-pilot.istio-system/10.128.0.7',
    'address=/istio-citadel.istio-system/10.128.0.8',
    'address=/istio-ca.istio-system/10.128.0.8',
  ]);
  t.notMatch(text, /Managed by istio-node-agent/, 'not marked as the agent’s own drop-in');
});

void t.test(
  'values are quoted only when needed, and a quoted value reads back the same',
  async (t) => {
    for (const v of ['10.0.0.0/8', 'a b', "it's", 'x$y', 'q"uote', '']) {
      const text = renderEnvFile([], [{ key: 'ISTIO_SERVICE', value: v, source: 's' }]);
      t.equal(parse(text).ISTIO_SERVICE, v, JSON.stringify(v));
    }
    t.equal(quoteEnvValue('10.0.0.0/8,fd00::/8'), '10.0.0.0/8,fd00::/8');
    t.throws(() => renderEnvFile([], [{ key: 'A', value: 'x\ny', source: 's' }]), /line break/);
  },
);

void t.test(
  'checkAgentAccepts: what the agent would refuse is refused here, with its words',
  async (t) => {
    const bad = renderEnvFile(
      [],
      [{ key: 'ISTIO_SERVICE_CIDR', value: '10.0.0.0/33', source: 's' }],
    );
    t.throws(
      () => {
        checkAgentAccepts([{ name: 'cluster.env', text: bad }]);
      },
      {
        code: 'AGENT_E_INTERNAL',
        message: /cluster\.env:3: ISTIO_SERVICE_CIDR/,
      },
    );
  },
);

void t.test('sidecar.env: namespace and name always; service and ports when given', async (t) => {
  t.same(
    sidecarEnvEntries({ vm: 'vm-1', namespace: 'shop' }).map((e) => [e.key, e.value]),
    [
      ['ISTIO_NAMESPACE', 'shop'],
      ['POD_NAME', 'vm-1'],
    ],
  );
  const clusterEnv = renderEnvFile(
    [],
    [{ key: 'ISTIO_SERVICE_CIDR', value: '10.0.0.0/16', source: 's' }],
  );
  const text = renderSidecarEnv(
    { vm: 'vm-1', namespace: 'shop', service: 'reviews', inboundPorts: '8080,9090' },
    clusterEnv,
  );
  t.same(parse(text), {
    ISTIO_NAMESPACE: 'shop',
    POD_NAME: 'vm-1',
    ISTIO_SERVICE: 'reviews',
    ISTIO_INBOUND_PORTS: '8080,9090',
  });
  t.throws(
    () => renderSidecarEnv({ vm: 'v', namespace: 'n', inboundPorts: '99999' }, clusterEnv),
    /ISTIO_INBOUND_PORTS/,
  );
});

const CERTS = { rootPem: 'ROOT\n', chainPem: 'CHAIN\n', keyPem: 'KEY\n' };
const SUMMARY = {
  secret: 'shop/istio.vm',
  identity: 'spiffe://cluster.local/ns/shop/sa/vm',
  notAfter: 0,
  validity: 'valid until 2027-01-01T00:00:00.000Z (8760h0m0s left)',
  rootSubject: 'O=cluster.local',
};

void t.test(
  'the bundle: files and modes; secrets 0600; INSTALL says where each goes',
  async (t) => {
    const files = bundleFiles({
      clusterEnv: 'C\n',
      sidecarEnv: 'S\n',
      certs: CERTS,
      installText: renderInstallText({
        vm: 'vm-1',
        context: 'prod',
        certs: SUMMARY,
        rootOnly: false,
      }),
    });
    t.same(
      files.map((f) => [f.name, f.mode.toString(8)]),
      [
        ['cluster.env', '644'],
        ['sidecar.env', '644'],
        ['root-cert.pem', '644'],
        ['cert-chain.pem', '644'],
        ['key.pem', '600'],
        ['install.sh', '755'],
        ['INSTALL', '644'],
      ],
    );
    const install = String(files.find((f) => f.name === 'INSTALL')!.content);
    t.match(install, /key\.pem\s+\/etc\/certs\/key\.pem\s+root:root 0600/);
    t.match(install, /cluster\.env\s+\/var\/lib\/istio\/envoy\/cluster\.env\s+root:root 0644/);
    t.match(install, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/vm, valid until/);
    t.match(install, /cluster setup vm-1 --host USER@HOST/);
    const rootOnly = bundleFiles({
      clusterEnv: 'C',
      sidecarEnv: 'S',
      certs: { rootPem: 'R' },
      installText: '',
    });
    t.notOk(
      rootOnly.some((f) => f.name === 'key.pem'),
      'root-only: no key',
    );
  },
);

void t.test(
  'the bundle as one ustar archive: a 0700 folder, root-owned entries, exact modes',
  async (t) => {
    const files = bundleFiles({
      clusterEnv: 'C\n',
      sidecarEnv: 'S\n',
      certs: CERTS,
      installText: 'I\n',
    });
    const tar = bundleTar('vm-1', files, Date.UTC(2026, 0, 1));
    t.equal(tar.length % 512, 0);
    const entries: {
      name: string;
      mode: string;
      uid: string;
      size: number;
      type: string;
      sumOk: boolean;
    }[] = [];
    for (let off = 0; off + 512 <= tar.length;) {
      const h = tar.subarray(off, off + 512);
      if (h.every((b) => b === 0)) break;
      const text = (a: number, n: number) =>
        h
          .subarray(a, a + n)
          .toString('utf8')
          .replace(/\0.*$/s, '');
      const size = parseInt(text(124, 12), 8);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      entries.push({
        name: text(0, 100),
        mode: text(100, 8),
        uid: text(108, 8),
        size,
        type: text(156, 1),
        sumOk: parseInt(text(148, 8), 8) === sum,
      });
      t.equal(text(257, 6), 'ustar');
      t.equal(text(265, 32), 'root');
      off += 512 + Math.ceil(size / 512) * 512;
    }
    t.same(
      entries.map((e) => [e.name, e.mode, e.type]),
      [
        ['vm-1/', '0000700', '5'],
        ['vm-1/cluster.env', '0000644', '0'],
        ['vm-1/sidecar.env', '0000644', '0'],
        ['vm-1/root-cert.pem', '0000644', '0'],
        ['vm-1/cert-chain.pem', '0000644', '0'],
        ['vm-1/key.pem', '0000600', '0'],
        ['vm-1/install.sh', '0000755', '0'],
        ['vm-1/INSTALL', '0000644', '0'],
      ],
    );
    t.ok(
      entries.every((e) => e.sumOk && e.uid === '0000000'),
      'checksums right, uid 0',
    );
    t.same(bundleTar('vm-1', files, Date.UTC(2026, 0, 1)), tar, 'the same input, the same bytes');
  },
);

void t.test('the certificate files (cluster certs, and in a bundle): key 0600', async (t) => {
  t.same(
    certFiles({ rootPem: 'R', chainPem: 'C', keyPem: 'K' }).map((f) => [f.name, f.content, f.mode]),
    [
      ['root-cert.pem', 'R', 0o644],
      ['cert-chain.pem', 'C', 0o644],
      ['key.pem', 'K', 0o600],
    ],
  );
  t.same(
    certFiles({ rootPem: 'R' }).map((f) => f.name),
    ['root-cert.pem'],
    'root only',
  );
});

void t.test("ISTIO_CP_AUTH: MUTUAL_TLS (1.0's default) or NONE", async (t) => {
  t.equal(DEFAULT_CP_AUTH, 'MUTUAL_TLS');
  t.same(['MUTUAL_TLS', 'NONE', 'mutual_tls', 'SOMETIMES', ''].map(isCpAuth), [
    true,
    true,
    false,
    false,
    false,
  ]);
});
