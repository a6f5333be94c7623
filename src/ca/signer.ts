import {
  createHash,
  createPrivateKey,
  generateKeyPair,
  randomBytes,
  webcrypto,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { x509 } from '../lib/x509';

/**
 * The dev CA's PKI: a root (ECDSA P-256 unless a root is handed in), an optional intermediate,
 * the CA's own TLS certificate, and workload certificates signed from CSRs with Citadel 1.0's
 * template (security/pkg/pki/ca/ca.go): random serial, subject and SAN copied from the CSR,
 * KeyUsage digitalSignature|keyEncipherment, ExtKeyUsage serverAuth+clientAuth, CA:false.
 */

const subtle = webcrypto.subtle;
const generateKeyPairAsync = promisify(generateKeyPair);

const OID_SAN = '2.5.29.17';
const DAY_MS = 86_400_000;

export interface Authority {
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly keyPem: string;
  readonly key: webcrypto.CryptoKey;
  readonly signingAlgorithm: webcrypto.Algorithm | webcrypto.EcdsaParams;
}

export interface ParsedCsr {
  readonly csr: x509.Pkcs10CertificateRequest;
  /** The CSR's subjectAltName extension as it came, undefined when it has none. */
  readonly san: x509.Extension | undefined;
  /** The SAN values (URIs, DNS names, IPs) in order. */
  readonly sans: readonly string[];
}

/** Thrown by parseCsr with Citadel 1.0's wording; the server maps it to INVALID_ARGUMENT. */
export class CsrError extends Error {}

/** A random positive serial of up to 127 bits, as hex (never a leading zero byte). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/** The SAN entries 1.0's node agent put in a CSR for an identity string (comma-separated). */
export function sanEntries(identity: string): { type: 'url' | 'dns' | 'ip'; value: string }[] {
  return identity
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((value) => ({
      type: isIP(value) ? 'ip' : value.startsWith('spiffe:') ? 'url' : 'dns',
      value,
    }));
}

export async function parseCsr(pem: string): Promise<ParsedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new CsrError(`CSR parsing error (${(e as Error).message})`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('CSR parsing error (the CSR signature does not verify)');
  const ext = csr.extensions.find((e) => e.type === OID_SAN);
  if (!ext) return { csr, san: undefined, sans: [] };
  let sans: string[];
  try {
    sans = new x509.SubjectAlternativeNameExtension(ext.rawData).names.items.map((n) => n.value);
  } catch (e) {
    throw new CsrError(`CSR identity extraction error (${(e as Error).message})`);
  }
  return { csr, san: ext, sans };
}

function signingAlgorithmFor(key: KeyObject): {
  importAlg: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  sign: webcrypto.Algorithm | webcrypto.EcdsaParams;
} {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!named) throw new Error(`unsupported CA key curve ${String(curve)} (use P-256 or P-384)`);
    return {
      importAlg: { name: 'ECDSA', namedCurve: named },
      sign: { name: 'ECDSA', hash: named === 'P-256' ? 'SHA-256' : 'SHA-384' },
    };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return {
      importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      sign: { name: 'RSASSA-PKCS1-v1_5' },
    };
  }
  throw new Error(`unsupported CA key type ${String(key.asymmetricKeyType)} (use ECDSA or RSA)`);
}

/** Loads a CA from PEM (key in PKCS#8, SEC1 or PKCS#1); checks that key and certificate match. */
export async function loadAuthority(certPem: string, keyPem: string): Promise<Authority> {
  const keyObj = createPrivateKey(keyPem);
  const nodeCert = new X509Certificate(certPem);
  if (!nodeCert.checkPrivateKey(keyObj))
    throw new Error('the CA key does not match the CA certificate');
  if (!nodeCert.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:false)');
  const { importAlg, sign } = signingAlgorithmFor(keyObj);
  const der = keyObj.export({ type: 'pkcs8', format: 'der' });
  const key = await subtle.importKey('pkcs8', der, importAlg, false, ['sign']);
  const cert = new x509.X509Certificate(certPem);
  return { certPem: normalizePem(cert.toString('pem')), cert, keyPem, key, signingAlgorithm: sign };
}

async function newEcKey(): Promise<{ keys: webcrypto.CryptoKeyPair; pem: string }> {
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const der = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey));
  const pem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { keys, pem };
}

/** The span a CA certificate covers: from a day before the earlier of real and injected time. */
function caValidity(clockNow: number, years: number): { notBefore: Date; notAfter: Date } {
  const real = Date.now();
  return {
    notBefore: new Date(Math.min(real, clockNow) - DAY_MS),
    notAfter: new Date(Math.max(real, clockNow) + years * 365 * DAY_MS),
  };
}

/** A CA certificate with its EC key, as the signer uses it. */
function ecAuthority(
  cert: x509.X509Certificate,
  keys: webcrypto.CryptoKeyPair,
  pem: string,
): Authority {
  return {
    certPem: normalizePem(cert.toString('pem')),
    cert,
    keyPem: pem,
    key: keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  };
}

export async function createRoot(clockNow: number): Promise<Authority> {
  const { keys, pem } = await newEcKey();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'O=cluster.local, CN=istio-node-agent dev CA root',
    ...caValidity(clockNow, 10),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return ecAuthority(cert, keys, pem);
}

async function authorityKeyId(issuer: Authority): Promise<x509.Extension> {
  const ski = issuer.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
  return x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey);
}

export async function createIntermediate(root: Authority, clockNow: number): Promise<Authority> {
  const { keys, pem } = await newEcKey();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'O=cluster.local, CN=istio-node-agent dev CA intermediate',
    issuer: root.cert.subjectName,
    ...caValidity(clockNow, 5),
    publicKey: keys.publicKey,
    signingKey: root.key,
    signingAlgorithm: root.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyId(root),
    ],
  });
  return ecAuthority(cert, keys, pem);
}

export interface LeafSpec {
  readonly publicKey: x509.PublicKey | webcrypto.CryptoKey | ArrayBuffer | Buffer;
  /** Subject DN (x509 Name or string); '' = empty. */
  readonly subject: x509.Name | string;
  /** The SAN extension to put in, as is. */
  readonly san: x509.Extension;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Default: serverAuth + clientAuth (a workload certificate). */
  readonly serverOnly?: boolean;
}

/** Signs a leaf certificate with Citadel 1.0's workload template. */
export async function issueLeaf(issuer: Authority, spec: LeafSpec): Promise<x509.X509Certificate> {
  const publicKey =
    spec.publicKey instanceof ArrayBuffer || Buffer.isBuffer(spec.publicKey)
      ? new x509.PublicKey(spec.publicKey)
      : spec.publicKey;
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: spec.subject,
    issuer: issuer.cert.subjectName,
    notBefore: new Date(spec.notBefore),
    notAfter: new Date(spec.notAfter),
    publicKey,
    signingKey: issuer.key,
    signingAlgorithm: issuer.signingAlgorithm,
    extensions: [
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        spec.serverOnly
          ? [x509.ExtendedKeyUsage.serverAuth]
          : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
      ),
      new x509.BasicConstraintsExtension(false, undefined, true),
      await authorityKeyId(issuer),
      spec.san,
    ],
  });
}

/** The CA's own TLS certificate and key (PEM), issued by the root for `serverNames`. */
export async function issueServerCert(
  root: Authority,
  serverNames: readonly string[],
  clockNow: number,
): Promise<{ certPem: string; keyPem: string }> {
  const { keys, pem } = await newEcKey();
  const names = serverNames.map((n) => ({
    type: isIP(n) ? ('ip' as const) : ('dns' as const),
    value: n,
  }));
  const { notBefore, notAfter } = caValidity(clockNow, 1);
  const cert = await issueLeaf(root, {
    publicKey: keys.publicKey,
    subject: `CN=${serverNames[0] ?? 'istio-citadel'}`,
    san: new x509.SubjectAlternativeNameExtension(names, false),
    notBefore: notBefore.getTime(),
    notAfter: notAfter.getTime(),
    serverOnly: true,
  });
  return { certPem: normalizePem(cert.toString('pem')), keyPem: pem };
}

/**
 * A key and certificate as Citadel put them in the `istio.<sa>` secret: RSA-2048 key in PKCS#1
 * ("RSA PRIVATE KEY"), or ECDSA P-256 in SEC1 ("EC PRIVATE KEY"); empty subject, critical SAN.
 */
export async function issueKeyAndCert(
  issuer: Authority,
  identity: string,
  notBefore: number,
  notAfter: number,
  alg: 'RSA' | 'ECDSA',
): Promise<{ certPem: string; keyPem: string }> {
  const pair =
    alg === 'RSA'
      ? await generateKeyPairAsync('rsa', { modulusLength: 2048 })
      : await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const keyPem = pair.privateKey.export(
    alg === 'RSA' ? { type: 'pkcs1', format: 'pem' } : { type: 'sec1', format: 'pem' },
  ) as string;
  const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
  const cert = await issueLeaf(issuer, {
    publicKey: spki,
    subject: '',
    san: new x509.SubjectAlternativeNameExtension(sanEntries(identity), true),
    notBefore,
    notAfter,
  });
  return { certPem: normalizePem(cert.toString('pem')), keyPem };
}

/** SHA-256 fingerprint of a DER certificate, as uppercase colon-separated hex (openssl style). */
export function fingerprint256(der: Buffer): string {
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/** PEM with \n line ends and exactly one trailing newline. */
export function normalizePem(pem: string): string {
  return pem.replace(/\r\n/g, '\n').trimEnd() + '\n';
}
