import { X509Certificate, type KeyObject } from 'node:crypto';
import { certificateSans } from '../identity/san';
import { AgentError } from '../lib/errors';
import { splitCertificates } from './pem';

export interface IssuedCert {
  /** leaf + intermediates, as written to cert-chain.pem (a trailing trust anchor dropped). */
  readonly chain: readonly string[];
  readonly notBefore: number;
  readonly notAfter: number;
  readonly serial: string;
  readonly identity: string;
}

export interface CheckInput {
  /** What the CA returned: PEM blocks, leaf first (each element may itself hold several). */
  readonly response: readonly string[];
  readonly key: KeyObject;
  readonly identity: string;
  /** Trust anchors (root-cert.pem, may hold several). */
  readonly rootPem: string;
  readonly now: number;
  /** Allowed clock skew between us and the CA, ms. */
  readonly skewMs: number;
}

/**
 * Checks what the CA returned before anything is written: the leaf is for our key, its SAN is
 * the identity we asked for, its validity is sane, and the chain verifies to root-cert.pem.
 * Throws an AgentError saying which check failed; the caller keeps the current set.
 */
export function checkIssued(input: CheckInput): IssuedCert {
  const blocks = input.response.flatMap((r) => splitCertificates(r));
  if (blocks.length === 0)
    throw new AgentError('AGENT_E_CERT_PARSE', 'the CA returned no PEM certificate');
  let certs: X509Certificate[];
  try {
    certs = blocks.map((b) => new X509Certificate(b));
  } catch (e) {
    throw new AgentError(
      'AGENT_E_CERT_PARSE',
      `the CA returned an unparsable certificate: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const roots = splitCertificates(input.rootPem).map((b) => new X509Certificate(b));
  if (roots.length === 0)
    throw new AgentError(
      'AGENT_E_CERT_CHAIN',
      'root-cert.pem holds no certificate to verify against',
    );
  const leaf = certs[0]!;

  if (!leaf.checkPrivateKey(input.key)) {
    throw new AgentError('AGENT_E_CERT_KEY_MISMATCH', 'the issued certificate is not for our key');
  }

  const sans = certificateSans(blocks[0]!).map((s) => s.value);
  const wanted = input.identity
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (!wanted.every((w) => sans.includes(w))) {
    throw new AgentError(
      'AGENT_E_CERT_SAN_MISMATCH',
      `the issued certificate is for ${sans.join(', ') || '(no SAN)'}, not ${input.identity}`,
    );
  }

  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (!(notAfter > input.now)) {
    throw new AgentError(
      'AGENT_E_CERT_VALIDITY',
      `the issued certificate expired at ${new Date(notAfter).toISOString()}`,
    );
  }
  if (notBefore > input.now + input.skewMs) {
    throw new AgentError(
      'AGENT_E_CERT_VALIDITY',
      `the issued certificate is not valid before ${new Date(notBefore).toISOString()} (clock skew?)`,
    );
  }
  if (notAfter <= notBefore)
    throw new AgentError('AGENT_E_CERT_VALIDITY', 'the issued certificate has no lifetime');

  // Walk the chain: each certificate must be issued and signed by the next.
  for (let i = 0; i + 1 < certs.length; i++) {
    const c = certs[i]!;
    const up = certs[i + 1]!;
    if (!c.checkIssued(up) || !c.verify(up.publicKey)) {
      throw new AgentError(
        'AGENT_E_CERT_CHAIN',
        `certificate ${i} of the chain is not signed by certificate ${i + 1}`,
      );
    }
  }
  // The top must be a trust anchor, or be signed by one.
  const top = certs[certs.length - 1]!;
  const isAnchor = (c: X509Certificate): boolean =>
    roots.some((r) => r.fingerprint256 === c.fingerprint256);
  const signedByAnchor = roots.some((r) => top.checkIssued(r) && top.verify(r.publicKey));
  if (!isAnchor(top) && !signedByAnchor) {
    throw new AgentError('AGENT_E_CERT_CHAIN', 'the issued chain does not verify to root-cert.pem');
  }
  const chain = isAnchor(top) && certs.length > 1 ? blocks.slice(0, -1) : blocks;
  return { chain, notBefore, notAfter, serial: leaf.serialNumber, identity: input.identity };
}
