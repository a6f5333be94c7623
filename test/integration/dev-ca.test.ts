// The embedded dev CA's certificates, checked with openssl; its bootstrap sets; its options; and
// the `dev-ca` command run as a child process. No root needed.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  createCaClient,
  startDevCa,
  type CaApi,
  type DevCa,
  type DevCaOptions,
} from '../../src/ca/index';
import { main } from '../../src/cli/index';
import type { AgentError } from '../../src/lib/errors';
import { makeCsr } from '../helpers/csr';
import { tmpDir } from '../helpers/tmp';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const HOUR = 3_600_000;
const ROOT_DIR = path.resolve(__dirname, '../..');

async function devCa(t: Test, opts: Partial<DevCaOptions> = {}): Promise<DevCa> {
  const ca = await startDevCa({ ttlMs: HOUR, ...opts });
  t.teardown(() => ca.stop());
  return ca;
}

function openssl(args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

async function issue(ca: DevCa, api: CaApi, ttlMs = HOUR, identity = ID) {
  const boot = await ca.issueBootstrap(ID, HOUR, 'ECDSA');
  const csr = await makeCsr(identity, { alg: 'RSA', subject: 'O=acme' });
  const c = createCaClient({
    address: ca.address,
    serverName: 'istio-citadel',
    rootPem: ca.rootPem,
    api,
    timeoutMs: 5000,
    credential: { kind: 'mtls', certChainPem: boot.certChainPem, keyPem: boot.keyPem },
  });
  try {
    return { chain: await c.sign({ csrPem: csr.csrPem, identity, ttlMs }), csr };
  } finally {
    c.close();
  }
}

for (const api of ['HandleCSR', 'CreateCertificate'] as const) {
  void t.test(`${api}: the issued certificate, as openssl sees it`, async (t) => {
    const dir = tmpDir(t, 'ca-test-', { mode: 0o700 });
    const ca = await devCa(t);
    const { chain, csr } = await issue(ca, api);
    const leafFile = path.join(dir, 'leaf.pem');
    const rootFile = path.join(dir, 'root.pem');
    const keyFile = path.join(dir, 'key.pem');
    writeFileSync(leafFile, chain[0]!);
    writeFileSync(rootFile, ca.rootPem);
    writeFileSync(keyFile, csr.keyPem);
    const v = openssl(['verify', '-CAfile', rootFile, leafFile]);
    t.equal(v.code, 0, v.out);
    t.match(v.out, /leaf\.pem: OK/);
    const text = openssl(['x509', '-in', leafFile, '-noout', '-text']).out;
    t.match(
      text,
      /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/vm\n/,
      'SAN copied from the CSR',
    );
    t.match(
      text,
      /X509v3 Extended Key Usage: \s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/,
      'EKU server+client',
    );
    t.match(text, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/, 'KeyUsage');
    t.match(text, /CA:FALSE/);
    t.match(text, /Subject: O\s*=\s*acme/, 'subject copied from the CSR');
    t.match(text, /Issuer: O\s*=\s*cluster\.local/);
    const serial = /Serial Number:\s*\n?\s*([0-9a-f:]+)/i.exec(text)?.[1]?.replace(/:/g, '') ?? '';
    t.ok(serial.length >= 30 && serial.length <= 32, `a 128-bit-ish random serial (${serial})`);
    const mod = (f: string, kind: 'x509' | 'rsa') =>
      openssl([kind, '-in', f, '-noout', '-modulus']).out.trim();
    t.equal(mod(leafFile, 'x509'), mod(keyFile, 'rsa'), 'the certificate is for the CSR key');
  });
}

void t.test(
  'notBefore/notAfter come from the injected clock; TTL = min(requested, CA TTL)',
  async (t) => {
    const now = Math.floor(Date.now() / 1000) * 1000 - 60_000;
    const ca = await devCa(t, { ttlMs: 2 * HOUR, clock: () => now });
    for (const [asked, want] of [
      [HOUR, HOUR],
      [5 * HOUR, 2 * HOUR],
    ] as const) {
      const { chain } = await issue(ca, 'CreateCertificate', asked);
      const leaf = new X509Certificate(chain[0]!);
      t.equal(Date.parse(leaf.validFrom), now, 'notBefore = clock');
      t.equal(Date.parse(leaf.validTo) - now, want, `asked ${asked / HOUR}h, got ${want / HOUR}h`);
    }
    t.equal(ca.calls.at(-1)!.at, now, 'call records carry the clock time');
  },
);

void t.test('with an intermediate, the chain verifies through it (openssl)', async (t) => {
  const dir = tmpDir(t, 'ca-test-', { mode: 0o700 });
  const ca = await devCa(t, { intermediate: true });
  const { chain } = await issue(ca, 'CreateCertificate');
  t.equal(chain.length, 3);
  writeFileSync(path.join(dir, 'leaf.pem'), chain[0]!);
  writeFileSync(path.join(dir, 'inter.pem'), chain[1]!);
  writeFileSync(path.join(dir, 'root.pem'), chain[2]!);
  const v = openssl([
    'verify',
    '-CAfile',
    path.join(dir, 'root.pem'),
    '-untrusted',
    path.join(dir, 'inter.pem'),
    path.join(dir, 'leaf.pem'),
  ]);
  t.equal(v.code, 0, v.out);
  const alone = openssl([
    'verify',
    '-CAfile',
    path.join(dir, 'root.pem'),
    path.join(dir, 'leaf.pem'),
  ]);
  t.not(alone.code, 0, 'not without the intermediate');
});

for (const alg of ['RSA', 'ECDSA'] as const) {
  void t.test(
    `issueBootstrap (${alg}): a set as Citadel's istio.<sa> secret holds it`,
    async (t) => {
      const dir = tmpDir(t, 'ca-test-', { mode: 0o700 });
      const ca = await devCa(t);
      const set = await ca.issueBootstrap(ID, 24 * HOUR, alg);
      const f = (n: string) => path.join(dir, n);
      writeFileSync(f('cert-chain.pem'), set.certChainPem);
      writeFileSync(f('key.pem'), set.keyPem);
      writeFileSync(f('root-cert.pem'), set.rootPem);
      t.equal(set.rootPem, ca.rootPem);
      t.match(
        set.keyPem,
        alg === 'RSA' ? /^-----BEGIN RSA PRIVATE KEY-----/ : /^-----BEGIN EC PRIVATE KEY-----/,
        'PKCS#1 / SEC1 as Go wrote them',
      );
      const v = openssl(['verify', '-CAfile', f('root-cert.pem'), f('cert-chain.pem')]);
      t.equal(v.code, 0, v.out);
      const text = openssl(['x509', '-in', f('cert-chain.pem'), '-noout', '-text']).out;
      t.match(
        text,
        /Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/vm/,
      );
      t.match(text, alg === 'RSA' ? /Public-Key: \(2048 bit\)/ : /Public-Key: \(256 bit\)/);
      if (alg === 'RSA') {
        const a = openssl(['x509', '-in', f('cert-chain.pem'), '-noout', '-modulus']).out.trim();
        const b = openssl(['rsa', '-in', f('key.pem'), '-noout', '-modulus']).out.trim();
        t.match(a, /^Modulus=[0-9A-F]+$/);
        t.equal(a, b, 'key and certificate match (modulus)');
      }
      const pubFromCert = openssl(['x509', '-in', f('cert-chain.pem'), '-noout', '-pubkey']).out;
      const pubFromKey = openssl(['pkey', '-in', f('key.pem'), '-pubout']).out;
      t.match(pubFromKey, /BEGIN PUBLIC KEY/);
      t.equal(pubFromCert, pubFromKey, 'key and certificate match (public key)');
      const leaf = new X509Certificate(set.certChainPem);
      t.equal(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom), 24 * HOUR);
    },
  );
}

void t.test('a root handed in is reused: old bootstraps keep authenticating', async (t) => {
  const first = await startDevCa({ ttlMs: HOUR });
  const boot = await first.issueBootstrap(ID, HOUR, 'ECDSA');
  await first.stop();
  const again = await devCa(t, { root: { certPem: first.rootPem, keyPem: first.rootKeyPem } });
  t.equal(again.rootPem, first.rootPem);
  const csr = await makeCsr(ID);
  const c = createCaClient({
    address: again.address,
    serverName: 'istio-citadel',
    rootPem: first.rootPem,
    api: 'HandleCSR',
    timeoutMs: 5000,
    credential: { kind: 'mtls', certChainPem: boot.certChainPem, keyPem: boot.keyPem },
  });
  t.teardown(() => {
    c.close();
  });
  const chain = await c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR });
  t.equal(
    new X509Certificate(chain[0]!).verify(new X509Certificate(first.rootPem).publicKey),
    true,
  );
  await t.rejects(
    startDevCa({ ttlMs: HOUR, root: { certPem: first.rootPem, keyPem: boot.keyPem } }),
    /does not match/,
  );
});

void t.test(
  'tamper sees the chain and the call, and its result is what the client gets',
  async (t) => {
    let seen: string[] = [];
    const ca = await devCa(t, {
      tamper: (chain, call) => {
        seen = chain;
        t.same(call.requestedIdentity, [ID]);
        return [...chain].reverse();
      },
    });
    const { chain } = await issue(ca, 'CreateCertificate');
    t.equal(seen.length, 2);
    t.same(chain, [...seen].reverse());
  },
);

void t.test('calls keeps the most recent records only', async (t) => {
  const ca = await devCa(t, { maxCallRecords: 2 });
  for (let i = 0; i < 3; i++) await issue(ca, 'HandleCSR');
  t.equal(ca.calls.length, 2);
  t.ok(ca.calls.every((c) => c.outcome === 'issued'));
});

void t.test('the CA TLS certificate carries the configured server names', async (t) => {
  const ca = await devCa(t, { serverNames: ['ca.example', '127.0.0.1'] });
  const boot = await ca.issueBootstrap(ID, HOUR, 'ECDSA');
  const csr = await makeCsr(ID);
  for (const [name, ok] of [
    ['ca.example', true],
    ['127.0.0.1', true],
    ['istio-citadel', false],
  ] as const) {
    const c = createCaClient({
      address: ca.address,
      serverName: name,
      rootPem: ca.rootPem,
      api: 'HandleCSR',
      timeoutMs: 5000,
      credential: { kind: 'mtls', certChainPem: boot.certChainPem, keyPem: boot.keyPem },
    });
    const r = await c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR }).then(
      () => 'ok',
      (e: unknown) => (e as AgentError).code,
    );
    c.close();
    t.equal(r, ok ? 'ok' : 'AGENT_E_CA_AUTH', name);
  }
});

/** Runs `istio-node-agent dev-ca` from source; resolves with the first stdout line. */
function startCli(t: Test, args: string[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT_DIR, 'src/main.ts'), 'dev-ca', ...args],
    {
      cwd: ROOT_DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code) => {
      r(code);
    }),
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const line = new Promise<string>((resolve, reject) => {
    const check = (): void => {
      const i = out.indexOf('\n');
      if (i >= 0) resolve(out.slice(0, i));
    };
    child.stdout.on('data', check);
    void exited.then((code) => {
      reject(new Error(`dev-ca exited ${code} before listening: ${err}`));
    });
  });
  return { child, line, exited, stderr: () => err };
}

void t.test(
  'dev-ca command: root kept in the state dir, bootstrap written once, SIGTERM exits 0',
  async (t) => {
    const dir = tmpDir(t, 'ca-test-', { mode: 0o700 });
    const state = path.join(dir, 'state');
    const certs = path.join(dir, 'certs');
    const args = [
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      state,
      '--ttl',
      '10m',
      '--bootstrap-identity',
      ID,
      '--bootstrap-dir',
      certs,
    ];
    const a = startCli(t, args);
    const line = await a.line;
    t.match(
      line,
      /^istio-node-agent dev-ca: listening on 127\.0\.0\.1:(\d+) .*workload TTL 10m; bootstrap .* written to /,
    );
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
    t.equal(statSync(path.join(state, 'root-key.pem')).mode & 0o777, 0o600, 'root key 0600');
    t.equal(statSync(path.join(certs, 'key.pem')).mode & 0o777, 0o600, 'bootstrap key 0600');
    t.equal(statSync(path.join(certs, 'cert-chain.pem')).mode & 0o777, 0o644);
    const root = readFileSync(path.join(state, 'root-cert.pem'), 'utf8');
    t.equal(readFileSync(path.join(certs, 'root-cert.pem'), 'utf8'), root);

    // It serves: the bootstrap set authenticates a CSR.
    const csr = await makeCsr(ID);
    const c = createCaClient({
      address: `127.0.0.1:${port}`,
      serverName: 'istio-citadel',
      rootPem: root,
      api: 'CreateCertificate',
      timeoutMs: 5000,
      credential: {
        kind: 'mtls',
        certChainPem: readFileSync(path.join(certs, 'cert-chain.pem'), 'utf8'),
        keyPem: readFileSync(path.join(certs, 'key.pem'), 'utf8'),
      },
    });
    const chain = await c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR });
    c.close();
    const leaf = new X509Certificate(chain[0]!);
    t.equal(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom), 10 * 60_000, '--ttl applies');

    a.child.kill('SIGTERM');
    t.equal(await a.exited, 0, 'SIGTERM: exit 0');
    t.match(
      a.stderr(),
      /"component":"dev-ca".*"api":"CreateCertificate".*"outcome":"issued"/,
      'the call was logged',
    );
    t.notMatch(a.stderr(), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no key material in the log');

    // Restart: same root, the existing bootstrap set is kept.
    const chainBefore = readFileSync(path.join(certs, 'cert-chain.pem'), 'utf8');
    const b = startCli(t, args);
    t.match(await b.line, /bootstrap .* kept in /);
    t.equal(readFileSync(path.join(state, 'root-cert.pem'), 'utf8'), root, 'the root is reused');
    t.equal(
      readFileSync(path.join(certs, 'cert-chain.pem'), 'utf8'),
      chainBefore,
      'the set is not overwritten',
    );
    b.child.kill('SIGINT');
    t.equal(await b.exited, 0, 'SIGINT: exit 0');
  },
);

void t.test('dev-ca command: usage errors exit 2 and change nothing', async (t) => {
  const dir = tmpDir(t, 'ca-test-', { mode: 0o700 });
  for (const args of [
    [],
    ['--state-dir', dir, '--listen', 'nonsense'],
    ['--state-dir', dir, '--listen', '127.0.0.1:99999'],
    ['--state-dir', dir, '--ttl', 'forever'],
    ['--state-dir', dir, '--bootstrap-key', 'DSA'],
    ['--state-dir', dir, '--bootstrap-dir', dir],
    ['--state-dir', dir, 'extra'],
  ]) {
    let err = '';
    const code = await main(['dev-ca', ...args], {
      env: {},
      out: () => undefined,
      err: (s: string) => {
        err += s;
      },
    });
    t.equal(code, 2, `${args.join(' ')}: ${err.split('\n')[0]}`);
    t.match(err, /\[AGENT_E_USAGE\]|Usage: istio-node-agent dev-ca/);
  }
  t.same(readdirSync(dir), [], 'no state written');
});
