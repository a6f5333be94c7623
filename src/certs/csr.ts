import type { WorkloadKey } from './keys';
import { signingAlgorithm } from './keys';
import { x509 } from '../lib/x509';

/**
 * A PKCS#10 CSR as Citadel expects it: Subject `O=<org>` (emitted even when empty, as 1.0 did),
 * one extension: the SAN. Identities are comma-separated as in 1.0: `spiffe:` entries become
 * URIs, IP addresses iPAddress, anything else a dNSName.
 */
export async function createCsr(key: WorkloadKey, identity: string, org: string): Promise<string> {
  const names = identity
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((v): x509.JsonGeneralName => {
      if (v.startsWith('spiffe:')) return { type: 'url', value: v };
      if (/^[\d.]+$/.test(v) || v.includes(':')) return { type: 'ip', value: v };
      return { type: 'dns', value: v };
    });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ O: [org] }],
    keys: key.keys,
    signingAlgorithm: signingAlgorithm(key.algorithm),
    extensions: [new x509.SubjectAlternativeNameExtension(names, false)],
  });
  return csr.toString('pem') + '\n';
}
