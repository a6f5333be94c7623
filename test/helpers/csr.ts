// Makes a key and a PKCS#10 CSR for tests, the way a node agent would: SAN = the identity
// (spiffe:// URI, DNS name or IP), optional subject, RSA-2048 or ECDSA P-256.
import { createPrivateKey, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { x509 } from '../../src/lib/x509';

export interface TestCsr {
  readonly csrPem: string;
  readonly keyPem: string;
}

export async function makeCsr(
  identity: string | undefined,
  opts: { alg?: 'RSA' | 'ECDSA'; subject?: string } = {},
): Promise<TestCsr> {
  const alg =
    opts.alg === 'RSA'
      ? {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        }
      : { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [];
  if (identity !== undefined) {
    const names = identity.split(',').map((value) => ({
      type: isIP(value)
        ? ('ip' as const)
        : value.startsWith('spiffe:')
          ? ('url' as const)
          : ('dns' as const),
      value,
    }));
    extensions.push(new x509.SubjectAlternativeNameExtension(names, true));
  }
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: opts.subject ?? '',
    keys,
    signingAlgorithm:
      opts.alg === 'RSA' ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' },
    extensions,
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { csrPem: csr.toString('pem'), keyPem };
}
