// The certificate component against the real embedded CA: gRPC over TLS on loopback, real keys,
// real files, checked with openssl.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { webcrypto, randomBytes } from 'node:crypto';
import { startDevCa, type DevCa, type DevCaOptions } from '../../src/ca/index';
import { buildCertManager, CertComponent } from '../../src/certs/index';
import { x509 } from '../../src/lib/x509';
import { certSerial } from '../../src/lib/cert-serial';
import { status } from '@grpc/grpc-js';
import { startGceMetadataDouble } from '../doubles/gce-metadata-server';
import { bootstrapDir, until } from '../helpers/certs';
import { makeRoot, makeLeaf } from '../helpers/pki';
import { tmpDir } from '../helpers/tmp';
import { FakeClock } from '../../src/lib/clock';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const openssl = (...args: string[]): string =>
  execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const serialOf = (pem: string): string => certSerial(new X509Certificate(pem));

async function withCa(t: Tap, opts: Partial<DevCaOptions> & { ttlMs: number }): Promise<DevCa> {
  const ca = await startDevCa(opts);
  t.teardown(() => ca.stop());
  return ca;
}
type Tap = Test;

function vars(
  ca: DevCa,
  certsDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CITADEL_ADDRESS: ca.address,
    CERTS_DIR: certsDir,
    WORKLOAD_KEY_ALGORITHM: 'ECDSA',
    CA_CALL_TIMEOUT: '2s',
    CERT_FIRST_CSR_JITTER: '0', // spreading the first CSR is tested in test/unit/cert-manager
    ISTIO_CAPTURE: 'false',
    SIDECAR_MODE: 'none',
    ...extra,
  };
}

/** openssl's view of what the agent wrote. */
function checkWithOpenssl(t: Tap, dir: string, identity: string): void {
  const chain = path.join(dir, 'cert-chain.pem');
  const root = path.join(dir, 'root-cert.pem');
  const key = path.join(dir, 'key.pem');
  const blocks =
    readFileSync(chain, 'utf8').match(
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
    ) ?? [];
  const work = tmpDir(t, 'chk-');
  writeFileSync(path.join(work, 'leaf.pem'), `${blocks[0] ?? ''}\n`);
  writeFileSync(path.join(work, 'untrusted.pem'), blocks.slice(1).join('\n') + '\n');
  const verifyArgs = [
    'verify',
    '-CAfile',
    root,
    ...(blocks.length > 1 ? ['-untrusted', path.join(work, 'untrusted.pem')] : []),
    path.join(work, 'leaf.pem'),
  ];
  t.match(openssl(...verifyArgs), /: OK/, 'openssl verify -CAfile root-cert.pem');
  t.match(
    openssl('x509', '-noout', '-ext', 'subjectAltName', '-in', chain),
    new RegExp(`URI:${identity.replace(/[/.]/g, '\\$&')}`),
    'SAN is the identity',
  );
  t.equal(
    openssl('x509', '-noout', '-pubkey', '-in', chain),
    openssl('pkey', '-pubout', '-in', key),
    'key.pem matches the certificate',
  );
}

t.test(
  'onprem, HandleCSR: first issuance with the bootstrap cert, then each renewal authenticates with the newest cert',
  async (t) => {
    const ca = await withCa(t, { ttlMs: 4000 });
    const boot = await ca.issueBootstrap(ID, 3600_000);
    const dir = bootstrapDir(t, boot);
    const deps = testDeps({ random: Math.random });
    const mgr = await buildCertManager(testConfig(vars(ca, dir)), deps, { keyOwner: 'none' });
    await mgr.start(new AbortController().signal);
    t.equal(mgr.status().ready, true);
    t.equal(deps.rotations.length, 1);
    t.equal(
      ca.calls[0]!.peerCertSerial,
      serialOf(boot.certChainPem),
      'first CSR authenticated with the bootstrap certificate',
    );
    t.equal(ca.calls[0]!.credentialType, 'onprem');
    t.equal(ca.calls[0]!.api, 'HandleCSR');
    checkWithOpenssl(t, dir, ID);
    t.not(
      readFileSync(path.join(dir, 'key.pem'), 'utf8'),
      boot.keyPem,
      'the bootstrap key was replaced by our own',
    );
    t.equal(
      readFileSync(path.join(dir, '..bootstrap', 'key.pem'), 'utf8'),
      boot.keyPem,
      'and kept aside',
    );

    await until(() => deps.rotations.length >= 3, 15_000, 'two renewals');
    await mgr.stop();
    const issued = ca.calls.filter((c) => c.outcome === 'issued');
    t.ok(issued.length >= 3);
    // From the CA's records, not the file: the first renewal of a 4-second certificate can come
    // before the checks above have read it (the first since start is drawn off schedule).
    t.equal(
      issued[1]!.peerCertSerial,
      issued[0]!.issuedSerial,
      'the second CSR used the first issued certificate',
    );
    t.equal(
      issued[2]!.peerCertSerial,
      issued[1]!.issuedSerial,
      'the third CSR used the second issued certificate (istio#22176)',
    );
    t.same(deps.fatals, []);
    checkWithOpenssl(t, dir, ID);
  },
);

t.test(
  'CreateCertificate through an intermediate: the chain on disk verifies with openssl',
  async (t) => {
    const ca = await withCa(t, { ttlMs: 3600_000, intermediate: true });
    const boot = await ca.issueBootstrap(ID, 3600_000);
    const dir = bootstrapDir(t, boot);
    const mgr = await buildCertManager(
      testConfig(vars(ca, dir, { CA_API: 'CreateCertificate', WORKLOAD_KEY_ALGORITHM: 'RSA' })),
      testDeps({ random: Math.random }),
      { keyOwner: 'none' },
    );
    await mgr.start(new AbortController().signal);
    await mgr.stop();
    t.equal(ca.calls[0]!.api, 'CreateCertificate');
    t.equal(ca.calls[0]!.subjectId, ID);
    const chain = readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8');
    t.equal(
      chain.match(/BEGIN CERTIFICATE/g)?.length,
      2,
      'leaf and intermediate; the root is not repeated',
    );
    t.match(
      openssl('x509', '-noout', '-text', '-in', path.join(dir, 'cert-chain.pem')),
      /Public-Key: \(2048 bit\)/,
    );
    checkWithOpenssl(t, dir, ID);
  },
);

t.test(
  'the component as run builds it: no I/O until preflight; SIGHUP certificate settings reach the manager',
  async (t) => {
    const ca = await withCa(t, { ttlMs: 3600_000 });
    const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
    const deps = testDeps({ random: Math.random });
    const c = new CertComponent(testConfig(vars(ca, dir)), deps, { keyOwner: 'none' });
    t.same(c.status(), { ready: false, summary: 'cert: none' }, 'built, nothing looked at yet');
    await c.preflight();
    t.equal(ca.calls.length, 0, 'preflight asks the CA nothing');
    await c.start(new AbortController().signal);
    t.equal(deps.rotations.length, 1);
    const other = 'spiffe://cluster.local/ns/default/sa/other';
    await c.reload(testConfig(vars(ca, dir, { WORKLOAD_IDENTITY: other })));
    await until(() => deps.rotations.length >= 2, 10_000, 'a renewal for the new identity');
    t.same(ca.calls.at(-1)!.requestedIdentity, [other], 'the reload reached the manager');
    await c.stop();
    t.same(deps.fatals, []);
  },
);

t.test(
  'a restart keeps a still-valid set it issued itself and only schedules renewal',
  async (t) => {
    const ca = await withCa(t, { ttlMs: 3600_000 });
    const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
    const cfg = testConfig(vars(ca, dir));
    const a = await buildCertManager(cfg, testDeps({ random: Math.random }), { keyOwner: 'none' });
    await a.start(new AbortController().signal);
    await a.stop();
    const calls = ca.calls.length;
    const before = readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8');
    const deps = testDeps({ random: Math.random });
    const b = await buildCertManager(cfg, deps, { keyOwner: 'none' });
    await b.start(new AbortController().signal);
    t.equal(ca.calls.length, calls, 'no CSR on restart');
    t.equal(readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8'), before);
    t.equal(b.status().ready, true);
    t.match(b.status().summary, /renewal at \d{4}-/);
    await b.stop();
  },
);

t.test(
  'the CA away for several TTLs: the agent keeps running and recovers when it is back',
  async (t) => {
    const ca1 = await startDevCa({ ttlMs: 3000 });
    const root = { certPem: ca1.rootPem, keyPem: ca1.rootKeyPem };
    const port = ca1.port;
    const dir = bootstrapDir(t, await ca1.issueBootstrap(ID, 3600_000));
    const deps = testDeps({ random: Math.random });
    const mgr = await buildCertManager(
      testConfig(vars(ca1, dir, { CA_CALL_TIMEOUT: '500ms' })),
      deps,
      { keyOwner: 'none' },
    );
    t.teardown(() => mgr.stop());
    await mgr.start(new AbortController().signal);
    await ca1.stop();
    const n = deps.rotations.length;
    await new Promise((r) => setTimeout(r, 9000)); // three lifetimes: the certificate expires meanwhile
    t.equal(deps.rotations.length, n, 'no rotation while the CA is away');
    t.same(deps.fatals, [], 'the agent did not give up');
    t.match(mgr.status().problem ?? '', /AGENT_E_CA_UNAVAILABLE/, 'status says why');
    t.equal(mgr.status().ready, false, 'not ready with an expired certificate');
    const ca2 = await startDevCa({ ttlMs: 3000, port, root });
    t.teardown(() => ca2.stop());
    await until(() => deps.rotations.length > n, 20_000, 'a renewal after the CA came back');
    t.equal(mgr.status().ready, true);
    t.equal(mgr.status().problem, undefined);
    const back = ca2.calls.find((c) => c.outcome === 'issued')!;
    t.ok(
      back.peerCertSans?.includes(ID),
      'authenticated (with the still-valid bootstrap set, ours having expired)',
    );
    await mgr.stop();
    checkWithOpenssl(t, dir, ID);
  },
);

/** Rewrites the leaf's public key into a certificate signed by another root. */
async function foreignCopy(leafPem: string): Promise<string[]> {
  const foreign = await makeRoot('CN=foreign');
  const leaf = new x509.X509Certificate(leafPem);
  const pub = await leaf.publicKey.export();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: leaf.subject,
    issuer: foreign.cert.subject,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    publicKey: pub,
    signingKey: foreign.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: leaf.extensions,
  });
  return [cert.toString('pem') + '\n', foreign.certPem];
}

/** Our public key, signed by the CA's own root, with a chosen SAN or validity. */
async function resigned(
  ca: DevCa,
  leafPem: string,
  o: { san?: string; notBefore?: number; notAfter?: number },
): Promise<string[]> {
  const leaf = new x509.X509Certificate(leafPem);
  const rootCert = new x509.X509Certificate(ca.rootPem);
  const der = Buffer.from(ca.rootKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const rootKey = await webcrypto.subtle.importKey(
    'pkcs8',
    der,
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );
  const extensions = o.san
    ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.san }])]
    : leaf.extensions;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: leaf.subject,
    issuer: rootCert.subject,
    notBefore: new Date(o.notBefore ?? leaf.notBefore.getTime()),
    notAfter: new Date(o.notAfter ?? leaf.notAfter.getTime()),
    publicKey: await leaf.publicKey.export(),
    signingKey: rootKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions,
  });
  return [cert.toString('pem') + '\n'];
}

t.test('a bad answer from the CA is rejected and the current set stays', async (t) => {
  const cases: [
    string,
    string,
    (ca: DevCa, chain: string[]) => Promise<string[]>,
    Record<string, string>?,
  ][] = [
    [
      'wrong key',
      'AGENT_E_CERT_KEY_MISMATCH',
      async (ca) => [(await ca.issueBootstrap(ID, 3600_000, 'ECDSA')).certChainPem],
    ],
    [
      'wrong SAN',
      'AGENT_E_CERT_SAN_MISMATCH',
      (ca, chain) => resigned(ca, chain[0]!, { san: 'spiffe://cluster.local/ns/default/sa/other' }),
    ],
    [
      'expired',
      'AGENT_E_CERT_VALIDITY',
      (ca, chain) =>
        resigned(ca, chain[0]!, {
          notBefore: Date.now() - 7200_000,
          notAfter: Date.now() - 3600_000,
        }),
    ],
    ['foreign chain', 'AGENT_E_CERT_CHAIN', (_ca, chain) => foreignCopy(chain[0]!)],
    [
      'garbage PEM',
      'AGENT_E_CERT_PARSE',
      () =>
        Promise.resolve(['-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n']),
    ],
    [
      'no PEM at all',
      'AGENT_E_CA_BAD_RESPONSE|AGENT_E_CERT_PARSE',
      () => Promise.resolve(['hello']),
    ],
    [
      'a leaf and 999 copies of the root',
      'AGENT_E_CA_BAD_RESPONSE',
      (ca, chain) => Promise.resolve([chain[0]!, ...Array.from({ length: 999 }, () => ca.rootPem)]),
    ],
    [
      'a leaf and 10 copies of the root (under the size caps)',
      'AGENT_E_CERT_CHAIN',
      (ca, chain) => Promise.resolve([chain[0]!, ...Array.from({ length: 10 }, () => ca.rootPem)]),
    ],
    [
      'a 100-year leaf for a requested 60 s',
      'AGENT_E_CERT_VALIDITY',
      (ca, chain) => resigned(ca, chain[0]!, { notAfter: Date.now() + 100 * 365 * 86_400_000 }),
      { WORKLOAD_CERT_TTL: '60s' },
    ],
  ];
  for (const [name, code, tamper, extra] of cases) {
    await t.test(name, async (t) => {
      const holder: { ca?: DevCa } = {};
      const ca = await withCa(t, { ttlMs: 3600_000, tamper: (chain) => tamper(holder.ca!, chain) });
      holder.ca = ca;
      const boot = await ca.issueBootstrap(ID, 3600_000);
      const dir = bootstrapDir(t, boot);
      const mgr = await buildCertManager(
        testConfig(vars(ca, dir, extra)),
        testDeps({ random: Math.random }),
        {
          keyOwner: 'none',
        },
      );
      const abort = new AbortController();
      const started = mgr.start(abort.signal);
      await until(() => mgr.status().problem !== undefined, 10_000, 'the first rejection');
      t.match(mgr.status().problem!, new RegExp(code), `rejected with ${code}`);
      t.equal(
        readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8'),
        boot.certChainPem,
        'cert-chain.pem unchanged',
      );
      t.equal(readFileSync(path.join(dir, 'key.pem'), 'utf8'), boot.keyPem, 'key.pem unchanged');
      t.equal(mgr.status().ready, false);
      abort.abort();
      await mgr.stop();
      await started.catch(() => undefined);
    });
  }
});

t.test(
  'a CA that asks to slow down (RESOURCE_EXHAUSTED + a retry hint over real gRPC): the agent waits at least that long',
  async (t) => {
    for (const hint of ['pushback', 'retry-info'] as const) {
      let calls = 0;
      const ca = await withCa(t, {
        ttlMs: 3600_000,
        fault: () =>
          ++calls === 1
            ? {
                kind: 'status',
                code: status.RESOURCE_EXHAUSTED,
                message: 'CSR rate limit',
                retryAfterMs: 45_000,
                hint,
              }
            : undefined,
      });
      const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
      const clock = new FakeClock(Date.now());
      const deps = { ...testDeps({ random: Math.random }), clock };
      const mgr = await buildCertManager(testConfig(vars(ca, dir)), deps, { keyOwner: 'none' });
      t.teardown(() => mgr.stop());
      const started = mgr.start(new AbortController().signal);
      started.catch(() => undefined);
      await until(
        () => /AGENT_E_CA_OVERLOADED/.test(mgr.status().problem ?? '') && clock.pending === 1,
        15_000,
        'the refusal and the retry timer',
      );
      const wait = clock.nextAt()! - clock.now();
      t.ok(wait >= 45_000, `${hint}: the retry waits at least the 45 s asked for (${wait} ms)`);
      t.ok(wait <= 45_000 * 1.2, `${hint}: jittered just above it`);
      await clock.advance(44_000);
      t.equal(mgr.status().details?.renewing, false, `${hint}: no CSR round 44 s later`);
      t.ok(clock.nextAt()! > clock.now(), `${hint}: the retry is still ahead`);
      t.equal(ca.calls.length, 1, `${hint}: no second CSR before the hint is over`);
      await clock.advance(wait - 44_000);
      await started;
      t.equal(ca.calls.length, 2, `${hint}: the second CSR after it`);
      t.equal(mgr.status().ready, true);
      await mgr.stop();
    }
  },
);

t.test('expired and the CA refuses: the agent ends with AGENT_E_CERT_EXPIRED', async (t) => {
  const ca = await withCa(t, {
    ttlMs: 3600_000,
    fault: () => ({ kind: 'status', code: status.PERMISSION_DENIED, message: 'no' }),
  });
  const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 2500));
  const deps = testDeps({ random: Math.random });
  const mgr = await buildCertManager(testConfig(vars(ca, dir)), deps, { keyOwner: 'none' });
  const t0 = Date.now();
  await t.rejects(mgr.start(new AbortController().signal), {
    code: 'AGENT_E_CERT_EXPIRED',
    message: /put a fresh bootstrap set/,
  });
  t.ok(Date.now() - t0 >= 1000, 'it kept trying while the bootstrap certificate was valid');
  t.ok(ca.calls.length >= 2, 'more than one attempt');
  await mgr.stop();
});

t.test(
  'gcp: identity token from the metadata server, server-only TLS, identity from the service account',
  async (t) => {
    const meta = await startGceMetadataDouble({ email: 'vm-1@proj.iam.gserviceaccount.com' });
    t.teardown(() => meta.close());
    const ca = await withCa(t, {
      ttlMs: 3600_000,
      tokenVerifier: (tok) =>
        tok === meta.token
          ? 'spiffe://cluster.local/ns/default/sa/vm-1@proj.iam.gserviceaccount.com'
          : undefined,
    });
    for (const api of ['HandleCSR', 'CreateCertificate']) {
      const dir = bootstrapDir(t, { rootPem: ca.rootPem });
      const deps = testDeps({ random: Math.random });
      const mgr = await buildCertManager(
        testConfig(
          vars(ca, dir, { CITADEL_ENV: 'gcp', GCE_METADATA_HOST: meta.host, CA_API: api }),
        ),
        deps,
        { keyOwner: 'none' },
      );
      await mgr.start(new AbortController().signal);
      await mgr.stop();
      const call = ca.calls[ca.calls.length - 1]!;
      t.equal(call.api, api);
      t.equal(call.bearer, meta.token, `${api}: authorization: Bearer <token>`);
      t.equal(call.peerCertSerial, undefined, `${api}: no client certificate`);
      if (api === 'HandleCSR') t.equal(call.credentialType, 'gcp');
      checkWithOpenssl(
        t,
        dir,
        'spiffe://cluster.local/ns/default/sa/vm-1@proj.iam.gserviceaccount.com',
      );
    }
    const identityCalls = meta.requests.filter((r) => r.path.endsWith('/identity'));
    t.ok(identityCalls.length >= 2, 'a fresh token for each CSR');
    t.equal(identityCalls[0]!.query.audience, 'grpc://istio-citadel:8060');
    t.equal(identityCalls[0]!.query.format, 'full');
    t.ok(meta.requests.every((r) => r.flavor === 'Google'));
  },
);

t.test(
  'gcp: the metadata server failing at start (service account email) is retried, not fatal',
  async (t) => {
    const meta = await startGceMetadataDouble({ mode: 'not-found' });
    t.teardown(() => meta.close());
    const ca = await withCa(t, { ttlMs: 3600_000, tokenVerifier: () => ID });
    const dir = bootstrapDir(t, { rootPem: ca.rootPem });
    const mgr = await buildCertManager(
      testConfig(vars(ca, dir, { CITADEL_ENV: 'gcp', GCE_METADATA_HOST: meta.host })),
      testDeps({ random: Math.random }),
      { keyOwner: 'none' },
    );
    t.teardown(() => mgr.stop());
    const started = mgr.start(new AbortController().signal);
    started.catch(() => undefined);
    await until(
      () => /AGENT_E_METADATA_BAD_RESPONSE/.test(mgr.status().problem ?? ''),
      10_000,
      'the failure to show in status',
    );
    meta.mode = 'ok';
    await started;
    t.equal(mgr.status().ready, true, 'the first certificate once the metadata server answers');
    t.ok(
      meta.requests.filter((r) => r.path.endsWith('/email')).length >= 2,
      'the email was asked for again',
    );
  },
);

t.test('auto picks gcp when the metadata server answers, onprem when it does not', async (t) => {
  const meta = await startGceMetadataDouble();
  t.teardown(() => meta.close());
  const ca = await withCa(t, {
    ttlMs: 3600_000,
    tokenVerifier: () => 'spiffe://cluster.local/ns/default/sa/vm@project.iam.gserviceaccount.com',
  });
  const gcpDir = bootstrapDir(t, { rootPem: ca.rootPem });
  const a = await buildCertManager(
    testConfig(vars(ca, gcpDir, { CITADEL_ENV: 'auto', GCE_METADATA_HOST: meta.host })),
    testDeps({ random: Math.random }),
    { keyOwner: 'none' },
  );
  await a.start(new AbortController().signal);
  await a.stop();
  t.equal(ca.calls[ca.calls.length - 1]!.credentialType, 'gcp');
  const onpremDir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
  const b = await buildCertManager(
    testConfig(vars(ca, onpremDir, { CITADEL_ENV: 'auto', GCE_METADATA_HOST: '127.0.0.1:1' })),
    testDeps({ random: Math.random }),
    { keyOwner: 'none' },
  );
  await b.start(new AbortController().signal);
  await b.stop();
  t.equal(ca.calls[ca.calls.length - 1]!.credentialType, 'onprem');
});

t.test('onprem without a bootstrap set: a clear configuration error', async (t) => {
  const ca = await withCa(t, { ttlMs: 3600_000 });
  const dir = bootstrapDir(t, { rootPem: ca.rootPem });
  const mgr = await buildCertManager(testConfig(vars(ca, dir)), testDeps({ random: Math.random }), {
    keyOwner: 'none',
  });
  await t.rejects(mgr.start(new AbortController().signal), {
    code: 'AGENT_E_BOOTSTRAP_MISSING',
    message: /cert-chain\.pem.*key\.pem missing/,
  });
  const leaf = await makeLeaf(await makeRoot(), {
    sans: [],
    notBefore: Date.now() - 1000,
    notAfter: Date.now() + 3600_000,
  });
  const noSan = bootstrapDir(t, {
    certChainPem: leaf.certPem,
    keyPem: leaf.key.pem,
    rootPem: ca.rootPem,
  });
  const m2 = await buildCertManager(
    testConfig(vars(ca, noSan)),
    testDeps({ random: Math.random }),
    { keyOwner: 'none' },
  );
  await t.rejects(m2.start(new AbortController().signal), { code: 'AGENT_E_IDENTITY_SAN' });
});

t.test('as root, key.pem is 0600 and owned by ENVOY_USER; the other files 0644', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('skipped: needs root', { skip: 'needs root to chown' });
    return;
  }
  const { statSync } = await import('node:fs');
  const nobody = /^nobody:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'))!;
  const ca = await withCa(t, { ttlMs: 3600_000 });
  const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
  const mgr = await buildCertManager(
    testConfig(vars(ca, dir, { ENVOY_USER: 'nobody' })),
    testDeps({ random: Math.random }),
  );
  await mgr.start(new AbortController().signal);
  await mgr.stop();
  const key = statSync(path.join(dir, 'key.pem'));
  t.equal(key.mode & 0o777, 0o600);
  t.equal(key.uid, Number(nobody[1]), 'owned by the uid of ENVOY_USER');
  t.equal(key.gid, Number(nobody[2]), 'and its group');
  t.equal(statSync(path.join(dir, 'cert-chain.pem')).mode & 0o777, 0o644);
  t.equal(statSync(path.join(dir, 'root-cert.pem')).mode & 0o777, 0o644);
});
