import { AgentError } from '../lib/errors';
import { x509 } from '../lib/x509';

export interface SanEntry {
  readonly type: 'uri' | 'dns' | 'ip' | 'email' | 'other';
  readonly value: string;
}

/** The SAN entries of a certificate, in order. */
export function certificateSans(pem: string): SanEntry[] {
  const cert = new x509.X509Certificate(pem);
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!ext) return [];
  return ext.names.items.map((n) => {
    const t = n.type;
    const type: SanEntry['type'] =
      t === 'url'
        ? 'uri'
        : t === 'dns'
          ? 'dns'
          : t === 'ip'
            ? 'ip'
            : t === 'email'
              ? 'email'
              : 'other';
    return { type, value: n.value };
  });
}

/**
 * Istio 1.0's rule for the identity of a bootstrap certificate: exactly one SAN is the identity;
 * with several, the first `spiffe://` one; otherwise there is none.
 */
export function identityFromSans(sans: readonly SanEntry[]): string | undefined {
  if (sans.length === 1) return sans[0]!.value;
  return sans.find((s) => s.type === 'uri' && s.value.startsWith('spiffe://'))?.value;
}

/** The identity of the first certificate in `chainPem`, or AGENT_E_IDENTITY_SAN. */
export function identityOfCertificate(chainPem: string, file: string): string {
  let sans: SanEntry[];
  try {
    sans = certificateSans(chainPem);
  } catch (e) {
    throw new AgentError(
      'AGENT_E_BOOTSTRAP_INVALID',
      `${file} is not a PEM certificate: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const id = identityFromSans(sans);
  if (id === undefined) {
    throw new AgentError(
      'AGENT_E_IDENTITY_SAN',
      sans.length === 0
        ? `${file}: the certificate has no SAN; issue a bootstrap certificate with a spiffe:// SAN or set WORKLOAD_IDENTITY`
        : `${file}: the certificate has ${sans.length} SANs and none is spiffe://; set WORKLOAD_IDENTITY`,
    );
  }
  return id;
}
