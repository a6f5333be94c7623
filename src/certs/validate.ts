import { X509Certificate, type KeyObject } from 'node:crypto';
import { certificateSans } from '../identity/index';
import { certSerial } from '../lib/cert-serial';
import { AgentError } from '../lib/errors';
import { verifyChain } from './chain';
import { extractCertificates } from '../lib/pem';
import { formatDuration, isoTime as iso } from '../lib/duration';

/**
 * The most a CA's answer may hold, in bytes of PEM text, checked before anything is parsed. A
 * workload chain (leaf, a few intermediates, maybe the root) is a few KiB even with RSA-4096.
 */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * The most certificates a chain may hold (leaf included). Go's crypto/x509 gives up after 100
 * signature checks; a workload chain is leaf, at most a few intermediates, and the root.
 */
export const MAX_CHAIN_CERTS = 10;

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
  /** The lifetime asked for (WORKLOAD_CERT_TTL): the leaf may not be valid longer (plus skew). */
  /** The lifetime asked for; undefined when none was (a bootstrap set checked on a workstation). */
  readonly ttlMs: number | undefined;
}

/**
 * Checks what the CA returned before anything is written: its size and chain length are bounded,
 * the leaf is for our key, its SAN is the identity we asked for, its validity is sane (not
 * longer than asked for, not beyond any issuer's), and the chain verifies to root-cert.pem.
 * Throws an AgentError saying which check failed; the caller keeps the current set.
 */
export function checkIssued(input: CheckInput): IssuedCert {
  const bytes = input.response.reduce((n, r) => n + Buffer.byteLength(r, 'utf8'), 0);
  if (bytes > MAX_RESPONSE_BYTES) {
    throw new AgentError(
      'AGENT_E_CA_BAD_RESPONSE',
      `the CA's answer holds ${bytes} bytes of certificates, more than the ${MAX_RESPONSE_BYTES} a workload chain needs; refused, the current set stays (check the CA's signing chain)`,
    );
  }
  const blocks = input.response.flatMap((r) => extractCertificates(r));
  if (blocks.length === 0)
    throw new AgentError('AGENT_E_CERT_PARSE', 'the CA returned no PEM certificate');
  if (blocks.length > MAX_CHAIN_CERTS) {
    throw new AgentError(
      'AGENT_E_CERT_CHAIN',
      `the CA returned a chain of ${blocks.length} certificates, more than the ${MAX_CHAIN_CERTS} a workload chain may hold; refused, the current set stays (check the CA's signing chain)`,
    );
  }
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
  const roots = extractCertificates(input.rootPem).map((b) => new X509Certificate(b));
  if (roots.length === 0)
    throw new AgentError(
      'AGENT_E_CERT_CHAIN',
      'root-cert.pem holds no certificate to verify against',
    );
  const leaf = certs[0]!;
  const seen = new Map<string, number>();
  certs.forEach((c, i) => {
    const first = seen.get(c.fingerprint256);
    if (first !== undefined) {
      throw new AgentError(
        'AGENT_E_CERT_CHAIN',
        `certificate ${i} of the chain the CA returned repeats certificate ${first}; refused`,
      );
    }
    seen.set(c.fingerprint256, i);
  });

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
      `the issued certificate expired at ${iso(notAfter)}`,
    );
  }
  if (notBefore > input.now + input.skewMs) {
    throw new AgentError(
      'AGENT_E_CERT_VALIDITY',
      `the issued certificate is not valid before ${iso(notBefore)} (clock skew?)`,
    );
  }
  if (notAfter <= notBefore)
    throw new AgentError('AGENT_E_CERT_VALIDITY', 'the issued certificate has no lifetime');
  if (input.ttlMs !== undefined && notAfter > input.now + input.ttlMs + input.skewMs) {
    throw new AgentError(
      'AGENT_E_CERT_VALIDITY',
      `the issued certificate is valid until ${iso(notAfter)}, longer than the ${formatDuration(input.ttlMs)} asked for (WORKLOAD_CERT_TTL) plus ${formatDuration(input.skewMs)} of clock skew; refused: make the CA honour the requested lifetime, or raise WORKLOAD_CERT_TTL to what it issues`,
    );
  }

  // Each certificate issued and signed by the next; the top an anchor or issued by one.
  const verdict = verifyChain(certs, roots);
  if (!verdict.ok) {
    throw new AgentError(
      'AGENT_E_CERT_CHAIN',
      'brokenAt' in verdict
        ? `certificate ${verdict.brokenAt} of the chain is not signed by certificate ${verdict.brokenAt + 1}`
        : 'the issued chain does not verify to root-cert.pem',
    );
  }
  // The leaf must not outlive any issuer above it, the trust anchor included.
  const anchor = verdict.anchor;
  for (const [i, c] of [...certs.slice(1), ...(anchor ? [anchor] : [])].entries()) {
    const until = Date.parse(c.validTo);
    if (notAfter > until) {
      const which = i + 1 < certs.length ? `certificate ${i + 1} of the chain` : 'root-cert.pem';
      throw new AgentError(
        'AGENT_E_CERT_VALIDITY',
        `the issued certificate is valid until ${iso(notAfter)}, after its issuer (${which}, ${c.subject.replace(/\n/g, ', ')}) expires at ${iso(until)}; refused: the CA must not sign beyond its own certificate, renew the CA's certificate`,
      );
    }
  }
  const chain = verdict.topIsAnchor && certs.length > 1 ? blocks.slice(0, -1) : blocks;
  return { chain, notBefore, notAfter, serial: certSerial(leaf), identity: input.identity };
}
