// `cluster env` and `cluster dns` against the kube-apiserver test double: the service range from
// the ServiceCIDR API or from a dry-run probe, the ILB wait, and the files written.
import t from 'tap';
import {
  lstatSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { parseEnvFile } from '../../src/config/env-file';
import { ILB_IPS, apiServer, cluster, putMeshExpansion } from '../helpers/cluster';

function vars(text: string): Record<string, string> {
  return Object.fromEntries(parseEnvFile(text, 'cluster.env').map((e) => [e.key, e.value]));
}

const EXPECTED_DNS = {
  CITADEL_ADDRESS: `${ILB_IPS.citadel}:8060`,
  ISTIO_DNS_SERVER: ILB_IPS.dns,
  ISTIO_PILOT_IP: ILB_IPS.pilot,
  ISTIO_CITADEL_IP: ILB_IPS.citadel,
  ISTIO_MIXER_IP: ILB_IPS.mixer,
};

void t.test(
  'env: the range from the ServiceCIDR API; every variable; nothing written to the cluster',
  async (t) => {
    const { server, kubeconfig } = await apiServer(t, {
      serviceCidrs: ['10.96.0.0/12', 'fd00:10:96::/112'],
    });
    putMeshExpansion(server);
    const r = await cluster(['env', '--kubeconfig', kubeconfig]);
    t.equal(r.code, 0, r.err);
    t.same(vars(r.out), {
      ISTIO_SERVICE_CIDR: '10.96.0.0/12,fd00:10:96::/112',
      ISTIO_SYSTEM_NAMESPACE: 'istio-system',
      ISTIO_CP_AUTH: 'MUTUAL_TLS',
      ...EXPECTED_DNS,
    });
    t.match(
      r.out,
      /# the cluster's service range: ServiceCIDR kubernetes \(networking\.k8s\.io\/v1\)\nISTIO_SERVICE_CIDR=/,
    );
    t.same(server.writes(), [], 'read-only: no object created or changed');
    t.notOk(
      server.requests.some((q) => q.dryRun),
      'no probe needed',
    );
  },
);

void t.test(
  'env: servicecidrs forbidden → the dry-run probe; IPv6 not configured is not an error',
  async (t) => {
    const { server, dir } = await apiServer(t, {
      serviceCidrs: ['10.100.0.0/16'],
      tokens: { 'ops-token': { name: 'ops', groups: [] } },
      rules: {
        ops: [
          { verbs: ['get'], apiGroups: [''], resources: ['services'] },
          { verbs: ['create'], apiGroups: [''], resources: ['services'], namespaces: ['vms'] },
        ],
      },
    });
    putMeshExpansion(server);
    const kc = server.kubeconfig(dir, { token: 'ops-token' }, { file: 'ops', namespace: 'vms' });
    const r = await cluster(['env', '--kubeconfig', kc]);
    t.equal(r.code, 0, r.err);
    t.equal(vars(r.out).ISTIO_SERVICE_CIDR, '10.100.0.0/16');
    t.match(
      r.out,
      /from the API server's answer to a dry-run Service asking for 203\.0\.113\.1 in namespace vms \(nothing was created\)/,
    );
    t.match(
      r.err,
      /note: listing servicecidrs \(networking\.k8s\.io, cluster scope\) is forbidden/,
    );
    const probes = server.requests.filter((q) => q.verb === 'create');
    t.ok(
      probes.length >= 1 && probes.every((q) => q.dryRun && q.namespace === 'vms'),
      'only dry-run creates, in the context namespace',
    );
    t.same(server.objects('services', 'vms'), [], 'nothing was created');
  },
);

void t.test(
  'env: an older cluster (no ServiceCIDR API), dual-stack: both ranges from probes',
  async (t) => {
    const { server, kubeconfig } = await apiServer(t, {
      serveServiceCidrs: false,
      serviceCidrs: ['10.96.0.0/12', 'fd00:10:96::/112'],
    });
    putMeshExpansion(server);
    const r = await cluster(['env', '--kubeconfig', kubeconfig]);
    t.equal(r.code, 0, r.err);
    t.equal(vars(r.out).ISTIO_SERVICE_CIDR, '10.96.0.0/12,fd00:10:96::/112');
    t.match(r.out, /asking for 203\.0\.113\.1 and 2001:db8::1/);
    t.ok(
      server.requests.some(
        (q) => q.path === '/apis/networking.k8s.io/v1/servicecidrs' && q.status === 404,
      ),
    );
  },
);

void t.test(
  'env: no way to the range is an error that says to pass --service-cidr; the flag works',
  async (t) => {
    const { server, dir } = await apiServer(t, {
      serveServiceCidrs: false,
      tokens: { 'ro-token': { name: 'ro', groups: [] } },
      rules: { ro: [{ verbs: ['get', 'list'], apiGroups: ['*'], resources: ['*'] }] },
    });
    putMeshExpansion(server);
    const kc = server.kubeconfig(dir, { token: 'ro-token' }, { file: 'ro' });
    let r = await cluster(['env', '--kubeconfig', kc]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /cannot find the cluster's service range: the cluster does not serve the ServiceCIDR API .*the dry-run probe was refused: .*verb "create" on resource "services".*pass --service-cidr.*\[AGENT_E_CLUSTER_SERVICE_CIDR\]/,
    );
    r = await cluster(['env', '--kubeconfig', kc, '--service-cidr', '10.55.240.0/20']);
    t.equal(r.code, 0, r.err);
    t.equal(vars(r.out).ISTIO_SERVICE_CIDR, '10.55.240.0/20');
    t.match(r.out, /given with --service-cidr/);
  },
);

void t.test(
  'env: waits for load-balancer addresses, a progress line per Service per look',
  async (t) => {
    const { server, kubeconfig } = await apiServer(t);
    putMeshExpansion(server, false);
    // The cloud assigns the addresses after the agent looked twice at the citadel ILB.
    let citadelLooks = 0;
    server.onRequest((q) => {
      if (q.method === 'GET' && q.name === 'citadel-ilb' && ++citadelLooks === 2) {
        server.setLoadBalancer('istio-system', 'citadel-ilb', [{ ip: ILB_IPS.citadel }]);
        server.setLoadBalancer('istio-system', 'istio-pilot-ilb', [{ ip: ILB_IPS.pilot }]);
        server.setLoadBalancer('istio-system', 'mixer-ilb', [{ ip: ILB_IPS.mixer }]);
        server.setLoadBalancer('kube-system', 'dns-ilb', [{ ip: ILB_IPS.dns }]);
      }
    });
    const r = await cluster(['env', '--kubeconfig', kubeconfig, '--poll', '100ms']);
    t.equal(r.code, 0, r.err);
    t.match(vars(r.out), EXPECTED_DNS);
    for (const s of [
      'kube-system/dns-ilb',
      'istio-system/istio-pilot-ilb',
      'istio-system/citadel-ilb',
      'istio-system/mixer-ilb',
    ])
      t.match(
        r.err,
        new RegExp(`${s}: no load-balancer address yet \\(waited 0s of 10m0s`),
        `progress for ${s}`,
      );

    const late = await apiServer(t);
    putMeshExpansion(late.server, false);
    const timeout = await cluster([
      'env',
      '--kubeconfig',
      late.kubeconfig,
      '--wait',
      '300ms',
      '--poll',
      '100ms',
    ]);
    t.equal(timeout.code, 1);
    t.match(
      timeout.err,
      /no load-balancer address after .* for kube-system\/dns-ilb, istio-system\/istio-pilot-ilb, istio-system\/citadel-ilb, istio-system\/mixer-ilb.*\[AGENT_E_CLUSTER_TIMEOUT\]/,
    );
  },
);

void t.test('env: addresses by hand, other ILB names, --no-dns, NONE', async (t) => {
  const { server, kubeconfig } = await apiServer(t);
  server.put('services', {
    metadata: { name: 'my-citadel', namespace: 'mesh' },
    spec: { type: 'LoadBalancer', ports: [{ port: 18060 }] },
  });
  server.setLoadBalancer('mesh', 'my-citadel', [{ ip: '10.20.0.8' }]);
  let r = await cluster([
    'env',
    '--kubeconfig',
    kubeconfig,
    '--istio-namespace',
    'mesh',
    '--citadel-service',
    'my-citadel',
    '--no-dns',
    '--cp-auth',
    'NONE',
  ]);
  t.equal(r.code, 0, r.err);
  t.same(vars(r.out), {
    ISTIO_SERVICE_CIDR: '10.96.0.0/12',
    ISTIO_SYSTEM_NAMESPACE: 'mesh',
    ISTIO_CP_AUTH: 'NONE',
    CITADEL_ADDRESS: '10.20.0.8:18060',
  });
  const before = server.requests.length;
  r = await cluster([
    'env',
    '--kubeconfig',
    kubeconfig,
    '--dns-server',
    '10.1.0.10:5353',
    '--pilot-ip',
    '10.1.0.7',
    '--citadel-ip',
    '10.1.0.8',
    '--mixer-ip',
    '10.1.0.9',
  ]);
  t.equal(r.code, 0, r.err);
  t.match(vars(r.out), {
    ISTIO_DNS_SERVER: '10.1.0.10:5353',
    CITADEL_ADDRESS: '10.1.0.8:8060',
    ISTIO_PILOT_IP: '10.1.0.7',
  });
  t.match(r.out, /given with --pilot-ip/);
  t.notOk(
    server.requests.slice(before).some((q) => q.resource === 'services' && q.verb === 'get'),
    'nothing looked up',
  );
  r = await cluster(['env', '--kubeconfig', kubeconfig]);
  t.equal(r.code, 1, 'the default ILBs do not exist here');
  t.match(
    r.err,
    /Service kube-system\/dns-ilb \(kube-dns for VMs\) not found: Istio 1\.0 made it with install\/kubernetes\/mesh-expansion\.yaml.*\[AGENT_E_CLUSTER_NOT_FOUND\]/,
  );
});

void t.test(
  'env -o DIR: 0644, idempotent, never over a different file or through a symlink',
  async (t) => {
    const { server, kubeconfig, dir } = await apiServer(t);
    putMeshExpansion(server);
    const out = path.join(dir, 'vm-files');
    const file = path.join(out, 'cluster.env');
    let r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', out]);
    t.equal(r.code, 0, r.err);
    t.equal(r.out, `${file}: created\n`);
    t.equal(statSync(file).mode & 0o777, 0o644);
    t.equal(statSync(out).mode & 0o777, 0o755);
    const first = readFileSync(file, 'utf8');
    t.match(vars(first), { ISTIO_SERVICE_CIDR: '10.96.0.0/12', ...EXPECTED_DNS });

    r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', out]);
    t.equal(r.code, 0);
    t.equal(r.out, `${file}: unchanged\n`, 'the same content again: nothing to do');

    server.setLoadBalancer('istio-system', 'istio-pilot-ilb', [{ ip: '10.10.0.77' }]);
    r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', out]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /cluster\.env exists with other content or mode; nothing was written \(--force replaces them.*\[AGENT_E_CLUSTER_OUTPUT\]/,
    );
    t.equal(readFileSync(file, 'utf8'), first, 'left as it was');
    r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', out, '--force']);
    t.equal(r.out, `${file}: replaced\n`);
    t.equal(vars(readFileSync(file, 'utf8')).ISTIO_PILOT_IP, '10.10.0.77');

    // A symlink planted where the file goes: refused; --force replaces the link, not its target.
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const linked = path.join(dir, 'linked');
    (await import('node:fs')).mkdirSync(linked);
    symlinkSync(victim, path.join(linked, 'cluster.env'));
    r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', linked]);
    t.equal(r.code, 1);
    t.match(r.err, /cluster\.env is a symlink; nothing was written/);
    r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', linked, '--force']);
    t.equal(r.code, 0, r.err);
    t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the target is untouched');
    t.notOk(lstatSync(path.join(linked, 'cluster.env')).isSymbolicLink());

    // The output directory itself a symlink: refused.
    symlinkSync(out, path.join(dir, 'dirlink'));
    r = await cluster(['env', '--kubeconfig', kubeconfig, '-o', path.join(dir, 'dirlink')]);
    t.equal(r.code, 1);
    t.match(r.err, /dirlink is a symlink; give the real directory/);
    t.equal(readlinkSync(path.join(dir, 'dirlink')), out);
  },
);

void t.test('dns: the variables, --json, and 1.0’s kubedns file', async (t) => {
  const { server, kubeconfig, dir } = await apiServer(t);
  putMeshExpansion(server);
  let r = await cluster(['dns', '--kubeconfig', kubeconfig]);
  t.equal(r.code, 0, r.err);
  t.same(vars(r.out), {
    ISTIO_DNS_SERVER: ILB_IPS.dns,
    ISTIO_PILOT_IP: ILB_IPS.pilot,
    ISTIO_CITADEL_IP: ILB_IPS.citadel,
    ISTIO_MIXER_IP: ILB_IPS.mixer,
  });
  r = await cluster(['dns', '--kubeconfig', kubeconfig, '--json']);
  const j = JSON.parse(r.out) as { addresses: Record<string, { ip: string; from: string }> };
  t.same(j.addresses.pilot, {
    role: 'pilot',
    ip: ILB_IPS.pilot,
    port: 15011,
    from: 'istio-system/istio-pilot-ilb',
    given: false,
  });
  const kubedns = path.join(dir, 'dnsmasq.d', 'kubedns');
  r = await cluster(['dns', '--kubeconfig', kubeconfig, '--kubedns', kubedns]);
  t.equal(r.code, 0, r.err);
  const text = readFileSync(kubedns, 'utf8');
  t.match(text, /^server=\/svc\.cluster\.local\/10\.10\.0\.10$/m);
  t.match(text, /^address=\/istio-pilot\.istio-system\/10\.10\.0\.7$/m);
  t.equal(statSync(kubedns).mode & 0o777, 0o644);
  t.equal(
    text.split('\n').filter((l) => l.startsWith('address=')).length,
    10,
    "1.0's ten address lines",
  );
});
