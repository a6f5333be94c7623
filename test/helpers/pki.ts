// A tiny test PKI for unit tests of certificate checks: a root, optional intermediate, and leaf
// certificates with chosen SANs, keys and validity. (Integration tests use the real dev CA.)
import { webcrypto, randomBytes } from 'node:crypto';
import { x509 } from '../../src/lib/x509';
import { generateWorkloadKey, type WorkloadKey } from '../../src/certs/keys';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestCa {
  readonly certPem: string;
  readonly keys: webcrypto.CryptoKeyPair;
  readonly cert: x509.X509Certificate;
}

export async function makeRoot(name = 'CN=test root', now = Date.now()): Promise<TestCa> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 10 * 365 * 86400_000),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keys, cert };
}

export async function makeIntermediate(
  parent: TestCa,
  name = 'CN=test intermediate',
  now = Date.now(),
): Promise<TestCa> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: name,
    issuer: parent.cert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 5 * 365 * 86400_000),
    publicKey: keys.publicKey,
    signingKey: parent.keys.privateKey,
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  return { certPem: cert.toString('pem') + '\n', keys, cert };
}

export interface LeafOptions {
  readonly sans: readonly { type: 'url' | 'dns' | 'ip'; value: string }[];
  readonly notBefore: number;
  readonly notAfter: number;
  readonly key?: WorkloadKey;
}

export async function makeLeaf(
  issuer: TestCa,
  o: LeafOptions,
): Promise<{ certPem: string; key: WorkloadKey }> {
  const key = o.key ?? (await generateWorkloadKey('ECDSA'));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex'),
    subject: 'O=',
    issuer: issuer.cert.subject,
    notBefore: new Date(o.notBefore),
    notAfter: new Date(o.notAfter),
    publicKey: key.keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: EC,
    extensions: o.sans.length
      ? [new x509.SubjectAlternativeNameExtension(o.sans.map((s) => ({ ...s })))]
      : [],
  });
  return { certPem: cert.toString('pem') + '\n', key };
}
