// `cluster certs` against the kube-apiserver double whose istio.<sa> Secrets hold bootstrap sets
// from our dev CA; the files checked with openssl.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa, type DevCa } from '../../src/ca/index';
import { apiServer, cluster, istioSecret } from '../helpers/cluster';

const HOUR = 3_600_000;
const ID = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

async function devCa(
  t: Test,
  opts: Parameters<typeof startDevCa>[0] = { ttlMs: HOUR },
): Promise<DevCa> {
  const ca = await startDevCa(opts);
  t.teardown(() => ca.stop());
  return ca;
}

function openssl(args: string[]): { code: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

void t.test(
  'certs: the three files, checked, key 0600 in a 0700 folder; again: unchanged',
  async (t) => {
    const ca = await devCa(t);
    const { server, kubeconfig, dir } = await apiServer(t);
    server.put(
      'secrets',
      istioSecret('shop', 'vm', await ca.issueBootstrap(ID('shop', 'vm'), 24 * HOUR, 'RSA')),
    );
    const out = path.join(dir, 'certs');
    let r = await cluster(['certs', 'vm', '-n', 'shop', '-o', out, '--kubeconfig', kubeconfig]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /root-cert\.pem: created\n.*cert-chain\.pem: created\n.*key\.pem: created\n/);
    t.match(
      r.out,
      /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/vm \(Secret shop\/istio\.vm\): valid until \d{4}-\d\d-\d\dT.* \(2[34]h\d+m[\d.]+s left\)/,
    );
    t.equal(statSync(out).mode & 0o777, 0o700);
    t.equal(statSync(path.join(out, 'key.pem')).mode & 0o777, 0o600);
    t.equal(statSync(path.join(out, 'cert-chain.pem')).mode & 0o777, 0o644);
    const f = (n: string) => path.join(out, n);
    const v = openssl(['verify', '-CAfile', f('root-cert.pem'), f('cert-chain.pem')]);
    t.equal(v.code, 0, v.out);
    t.equal(
      openssl(['x509', '-in', f('cert-chain.pem'), '-noout', '-modulus']).out,
      openssl(['rsa', '-in', f('key.pem'), '-noout', '-modulus']).out,
      'the key is the certificate’s',
    );
    r = await cluster([
      'certs',
      'vm',
      '-n',
      'shop',
      '-o',
      out,
      '--kubeconfig',
      kubeconfig,
      '--json',
    ]);
    const j = JSON.parse(r.out) as { files: Record<string, string>; identity: string };
    t.same(j.files, {
      'root-cert.pem': 'unchanged',
      'cert-chain.pem': 'unchanged',
      'key.pem': 'unchanged',
    });
    t.equal(j.identity, ID('shop', 'vm'));
  },
);

void t.test('certs --root-only: only the root (GCE VMs)', async (t) => {
  const ca = await devCa(t);
  const { server, kubeconfig, dir } = await apiServer(t);
  server.put(
    'secrets',
    istioSecret(
      'default',
      'default',
      await ca.issueBootstrap(ID('default', 'default'), HOUR, 'ECDSA'),
    ),
  );
  const out = path.join(dir, 'gce');
  const r = await cluster([
    'certs',
    'default',
    '--root-only',
    '-o',
    out,
    '--kubeconfig',
    kubeconfig,
  ]);
  t.equal(r.code, 0, r.err);
  t.equal(readFileSync(path.join(out, 'root-cert.pem'), 'utf8'), ca.rootPem);
  t.match(
    r.out,
    /^.*root-cert\.pem: created\nroot O=cluster\.local, CN=istio-node-agent dev CA root \(Secret default\/istio\.default\): valid until/,
  );
  t.throws(() => statSync(path.join(out, 'key.pem')), { code: 'ENOENT' });
});

void t.test(
  'certs: every failed check names the Secret and what is wrong; nothing is written',
  async (t) => {
    const ca = await devCa(t);
    const other = await devCa(t);
    const past = await devCa(t, { ttlMs: HOUR, clock: () => Date.now() - 3 * HOUR });
    const { server, kubeconfig, dir } = await apiServer(t);
    const good = await ca.issueBootstrap(ID('ns', 'vm'), HOUR, 'ECDSA');
    const cases: [string, Parameters<typeof istioSecret>[2], RegExp][] = [
      [
        'wrong-sa',
        await ca.issueBootstrap(ID('ns', 'someone-else'), HOUR, 'ECDSA'),
        /the certificate is for spiffe:\/\/cluster\.local\/ns\/ns\/sa\/someone-else, not spiffe:\/\/cluster\.local\/ns\/ns\/sa\/wrong-sa; is --trust-domain right\?/,
      ],
      [
        'wrong-key',
        {
          ...(await ca.issueBootstrap(ID('ns', 'wrong-key'), HOUR, 'ECDSA')),
          keyPem: good.keyPem,
        },
        /not for our key/,
      ],
      [
        'wrong-root',
        {
          ...(await ca.issueBootstrap(ID('ns', 'wrong-root'), HOUR, 'ECDSA')),
          rootPem: other.rootPem,
        },
        /does not verify to root-cert\.pem/,
      ],
      ['expired', await past.issueBootstrap(ID('ns', 'expired'), HOUR, 'ECDSA'), /expired at/],
      [
        'garbage',
        { ...good, certChainPem: 'not a certificate\n' },
        /cert-chain\.pem holds no PEM certificate/,
      ],
    ];
    for (const [sa, set, re] of cases) {
      server.put('secrets', istioSecret('ns', sa, set));
      const out = path.join(dir, sa);
      const r = await cluster(['certs', sa, '-n', 'ns', '-o', out, '--kubeconfig', kubeconfig]);
      t.equal(r.code, 1, sa);
      t.match(
        r.err,
        new RegExp(`Secret ns/istio\\.${sa}: .*\\[AGENT_E_CLUSTER_SECRET_INVALID\\]`),
        sa,
      );
      t.match(r.err, re, sa);
      t.throws(() => statSync(out), { code: 'ENOENT' }, `${sa}: nothing written`);
    }
    server.put('secrets', {
      metadata: { name: 'istio.partial', namespace: 'ns' },
      data: { 'root-cert.pem': Buffer.from(ca.rootPem).toString('base64') },
    });
    let r = await cluster([
      'certs',
      'partial',
      '-n',
      'ns',
      '-o',
      path.join(dir, 'p'),
      '--kubeconfig',
      kubeconfig,
    ]);
    t.match(r.err, /Secret ns\/istio\.partial has no cert-chain\.pem \(keys: root-cert\.pem\)/);
    r = await cluster([
      'certs',
      'vm',
      '--trust-domain',
      'example.org',
      '-n',
      'ns',
      '-o',
      path.join(dir, 'td'),
      '--kubeconfig',
      kubeconfig,
    ]);
    t.equal(r.code, 1, 'no istio.vm in ns');
    r = await cluster([
      'certs',
      'ghost',
      '-n',
      'ns',
      '-o',
      path.join(dir, 'g'),
      '--kubeconfig',
      kubeconfig,
    ]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /Secret ns\/istio\.ghost not found: Citadel writes istio\.<service account> for every ServiceAccount.*kubectl -n ns create serviceaccount ghost.*\[AGENT_E_CLUSTER_NOT_FOUND\]/,
    );
  },
);

void t.test('certs: another trust domain and secret prefix', async (t) => {
  const ca = await devCa(t);
  const { server, kubeconfig, dir } = await apiServer(t);
  server.put('secrets', {
    ...istioSecret(
      'ns',
      'vm',
      await ca.issueBootstrap('spiffe://corp.example/ns/ns/sa/vm', HOUR, 'ECDSA'),
    ),
    metadata: { name: 'mesh-vm', namespace: 'ns' },
  });
  const r = await cluster([
    'certs',
    'vm',
    '-n',
    'ns',
    '--trust-domain',
    'corp.example',
    '--secret-prefix',
    'mesh-',
    '-o',
    path.join(dir, 'o'),
    '--kubeconfig',
    kubeconfig,
  ]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /spiffe:\/\/corp\.example\/ns\/ns\/sa\/vm \(Secret ns\/mesh-vm\)/);
});
