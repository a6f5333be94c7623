import { AgentError } from '../lib/errors';
import { X509Certificate } from 'node:crypto';

export interface SanEntry {
  readonly type: 'uri' | 'dns' | 'ip' | 'email' | 'other';
  readonly value: string;
}

const SAN_TYPES: Record<string, SanEntry['type']> = {
  URI: 'uri',
  DNS: 'dns',
  'IP Address': 'ip',
  email: 'email',
};

/**
 * Parses Node's `X509Certificate.subjectAltName` text: `TYPE:value` entries joined by ", ",
 * where a value with special characters (a comma, a quote) is JSON-quoted.
 */
export function parseSubjectAltName(text: string | undefined): SanEntry[] {
  const out: SanEntry[] = [];
  let rest = text ?? '';
  while (rest.length > 0) {
    const colon = rest.indexOf(':');
    if (colon < 0) break;
    const kind = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      let end = 1;
      while (end < rest.length && !(rest[end] === '"' && rest[end - 1] !== '\\')) end++;
      value = JSON.parse(rest.slice(0, end + 1)) as string;
      rest = rest.slice(end + 1);
    } else {
      const sep = rest.indexOf(', ');
      value = sep < 0 ? rest : rest.slice(0, sep);
      rest = sep < 0 ? '' : rest.slice(sep);
    }
    if (rest.startsWith(', ')) rest = rest.slice(2);
    out.push({ type: SAN_TYPES[kind] ?? 'other', value });
  }
  return out;
}

/** The SAN entries of a certificate (the first in `pem`), in order. */
export function certificateSans(pem: string): SanEntry[] {
  return parseSubjectAltName(new X509Certificate(pem).subjectAltName);
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
