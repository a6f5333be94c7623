// `cluster bundle` against the kube-apiserver double (certificates from the dev CA), its tar
// archive read by the system's tar, and the bundle's install.sh run as root into a temporary root.
import t, { type Test } from 'tap';
import { tmpDir } from '../helpers/tmp';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { parseEnvFile } from '../../src/config/env-file';
import { ILB_IPS, apiServer, cluster, istioSecret, putMeshExpansion } from '../helpers/cluster';
import { isRoot } from '../helpers/root';

const ID = 'spiffe://cluster.local/ns/shop/sa/reviews';

async function bundleSetup(t: Test) {
  const ca = await startDevCa({ ttlMs: 3600_000 });
  t.teardown(() => ca.stop());
  const { server, kubeconfig, dir } = await apiServer(t);
  putMeshExpansion(server);
  server.put(
    'secrets',
    istioSecret('shop', 'reviews', await ca.issueBootstrap(ID, 24 * 3600_000, 'ECDSA')),
  );
  const args = [
    '--kubeconfig',
    kubeconfig,
    '-n',
    'shop',
    '-s',
    'reviews',
    '--service',
    'reviews',
    '--ports',
    '9080',
  ];
  return { ca, server, dir, args };
}

const MODES: Record<string, number> = {
  'cluster.env': 0o644,
  'sidecar.env': 0o644,
  'root-cert.pem': 0o644,
  'cert-chain.pem': 0o644,
  'key.pem': 0o600,
  'install.sh': 0o755,
  INSTALL: 0o644,
};

void t.test(
  'bundle: one 0700 folder, secrets 0600, both env files; again: unchanged',
  async (t) => {
    const { ca, dir, args } = await bundleSetup(t);
    const out = path.join(dir, 'vm-1');
    let r = await cluster(['bundle', 'vm-1', '-o', out, ...args]);
    t.equal(r.code, 0, r.err);
    t.equal(statSync(out).mode & 0o777, 0o700);
    t.same(readdirSync(out).sort(), Object.keys(MODES).sort());
    for (const [f, mode] of Object.entries(MODES))
      t.equal(statSync(path.join(out, f)).mode & 0o777, mode, f);
    const env = (f: string) =>
      Object.fromEntries(
        parseEnvFile(readFileSync(path.join(out, f), 'utf8'), f).map((e) => [e.key, e.value]),
      );
    t.match(env('cluster.env'), {
      CITADEL_ADDRESS: `${ILB_IPS.citadel}:8060`,
      ISTIO_SERVICE_CIDR: '10.96.0.0/12',
    });
    t.same(env('sidecar.env'), {
      ISTIO_NAMESPACE: 'shop',
      POD_NAME: 'vm-1',
      ISTIO_SERVICE: 'reviews',
      ISTIO_INBOUND_PORTS: '9080',
    });
    t.equal(readFileSync(path.join(out, 'root-cert.pem'), 'utf8'), ca.rootPem);
    t.match(
      r.out,
      new RegExp(
        `${ID.replace(/\//g, '\\/')}: valid until .*; next: see ${out.replace(/\//g, '\\/')}\\/INSTALL`,
      ),
    );
    t.match(readFileSync(path.join(out, 'INSTALL'), 'utf8'), /sudo sh install\.sh/);
    r = await cluster(['bundle', 'vm-1', '-o', out, ...args, '--json']);
    const j = JSON.parse(r.out) as { files: Record<string, string> };
    t.ok(
      Object.values(j.files).every((o) => o === 'unchanged'),
      'idempotent',
    );
    chmodSync(out, 0o755);
    await cluster(['bundle', 'vm-1', '-o', out, ...args]);
    t.equal(statSync(out).mode & 0o777, 0o700, 'the folder is put back to 0700');
  },
);

void t.test(
  'bundle --tar: one archive, root-owned entries with the modes, read by tar',
  async (t) => {
    const { dir, args } = await bundleSetup(t);
    const file = path.join(dir, 'out', 'vm-1.tar');
    const r = await cluster(['bundle', 'vm-1', '--tar', '-o', file, ...args]);
    t.equal(r.code, 0, r.err);
    t.equal(statSync(file).mode & 0o777, 0o600, 'the archive holds a key: 0600');
    const list = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' })
      .trim()
      .split('\n');
    t.match(list[0], /^drwx------ 0\/0 .* vm-1\/$/);
    for (const [f, mode] of Object.entries(MODES)) {
      const line = list.find((l) => l.endsWith(` vm-1/${f}`));
      const perms =
        (mode & 0o700 ? 'r' : '-') + (mode & 0o200 ? 'w' : '-') + (mode & 0o100 ? 'x' : '-');
      t.match(line, new RegExp(`^-${perms}.* 0/0 `), `${f}: ${mode.toString(8)}, owner 0/0`);
    }
    const x = tmpDir(t, 'bundle-untar-', { mode: 0o700 });
    execFileSync('tar', ['-xpf', file, '-C', x]);
    t.equal(statSync(path.join(x, 'vm-1', 'key.pem')).mode & 0o777, 0o600);
    if (isRoot)
      t.equal(statSync(path.join(x, 'vm-1', 'key.pem')).uid, 0, 'extracted as root: owned by root');
  },
);

void t.test(
  'install.sh as root: root-owned files and folders, idempotent, certificates kept',
  { skip: isRoot ? false : 'install.sh places files as root' },
  async (t) => {
    const { dir, args } = await bundleSetup(t);
    const out = path.join(dir, 'vm-1');
    t.equal((await cluster(['bundle', 'vm-1', '-o', out, ...args])).code, 0);
    const root = tmpDir(t, 'install-root-', { mode: 0o700 });
    // What a 1.0-style install left: istio-proxy-owned, group-writable directories.
    mkdirSync(path.join(root, 'var/lib/istio/envoy'), { recursive: true, mode: 0o775 });
    chownSync(path.join(root, 'var/lib/istio/envoy'), 65534, 65534);
    const run = (...extra: string[]) =>
      spawnSync('sh', [path.join(out, 'install.sh'), '--root', root, ...extra], {
        encoding: 'utf8',
      });

    let r = run();
    t.equal(r.status, 0, r.stderr);
    t.match(
      r.stdout,
      /changed: \/var\/lib\/istio\/envoy\/cluster\.env \/var\/lib\/istio\/envoy\/sidecar\.env \/etc\/certs\/root-cert\.pem \/etc\/certs\/cert-chain\.pem \/etc\/certs\/key\.pem\n$/,
    );
    const want: [string, number][] = [
      ['var/lib/istio', 0o755],
      ['var/lib/istio/envoy', 0o755],
      ['etc/certs', 0o755],
      ['var/lib/istio/envoy/cluster.env', 0o644],
      ['var/lib/istio/envoy/sidecar.env', 0o644],
      ['etc/certs/root-cert.pem', 0o644],
      ['etc/certs/cert-chain.pem', 0o644],
      ['etc/certs/key.pem', 0o600],
    ];
    for (const [p, mode] of want) {
      const st = statSync(path.join(root, p));
      t.same(
        [st.uid, st.gid, st.mode & 0o7777],
        [0, 0, mode],
        `${p}: root:root ${mode.toString(8)}`,
      );
    }
    t.equal(
      readFileSync(path.join(root, 'etc/certs/key.pem'), 'utf8'),
      readFileSync(path.join(out, 'key.pem'), 'utf8'),
    );

    r = run();
    t.equal(r.status, 0);
    t.equal(r.stdout.trim().split('\n').at(-1), 'changed: nothing', 'a second run changes nothing');

    // The agent took over the certificates (its symlinked set): kept, unless --replace-certs,
    // which replaces the links without writing through them.
    const certs = path.join(root, 'etc/certs');
    const data = path.join(certs, '..data-1');
    mkdirSync(data);
    for (const f of ['root-cert.pem', 'cert-chain.pem', 'key.pem']) {
      writeFileSync(path.join(data, f), `agent's ${f}\n`);
      execFileSync('rm', [path.join(certs, f)]);
      symlinkSync(path.join('..data-1', f), path.join(certs, f));
    }
    r = run();
    t.match(r.stdout, /kept the certificates in \/etc\/certs/);
    t.equal(r.stdout.trim().split('\n').at(-1), 'changed: nothing');
    r = run('--replace-certs');
    t.match(
      r.stdout,
      /changed: \/etc\/certs\/root-cert\.pem \/etc\/certs\/cert-chain\.pem \/etc\/certs\/key\.pem/,
    );
    t.notOk(
      lstatSync(path.join(certs, 'key.pem')).isSymbolicLink(),
      'the link was replaced by a file',
    );
    t.equal(
      readFileSync(path.join(data, 'key.pem'), 'utf8'),
      "agent's key.pem\n",
      'not written through',
    );

    // A changed cluster.env is placed again.
    writeFileSync(
      path.join(root, 'var/lib/istio/envoy/cluster.env'),
      'ISTIO_SERVICE_CIDR=10.0.0.0/8\n',
    );
    r = run();
    t.match(r.stdout, /changed: \/var\/lib\/istio\/envoy\/cluster\.env\n$/);

    // Not root: refused before anything (from a copy nobody can read; the bundle is 0700).
    const open = tmpDir(t, 'install-sh-', { mode: 0o700 });
    chmodSync(open, 0o755);
    writeFileSync(path.join(open, 'install.sh'), readFileSync(path.join(out, 'install.sh')), {
      mode: 0o755,
    });
    const nobody = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', path.join(open, 'install.sh')],
      { encoding: 'utf8' },
    );
    t.equal(nobody.status, 1);
    t.match(nobody.stderr, /run it as root/);
  },
);
