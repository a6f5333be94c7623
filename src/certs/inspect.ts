import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as path from 'node:path';
import {
  identityOfCertificate,
  type CredentialInput,
  type IdentitySource,
} from '../identity/index';
import { AgentError, toAgentError, type ErrorCode } from '../lib/errors';
import { certSerial } from '../lib/cert-serial';
import { extractCertificates } from '../lib/pem';
import { verifyChain } from './chain';
import { validShare } from './policy';
import { CHAIN_FILE, KEY_FILE, ROOT_FILE, type StoredSet } from './store';

/** What the manager knows of the certificate held. */
export interface HeldCert {
  readonly notBefore: number;
  readonly notAfter: number;
  readonly serial: string;
  readonly issuer: 'agent' | 'bootstrap';
  readonly generation: string | undefined;
  /** Where its renewal point was drawn (policy.ts's RenewalPoint.share), when known. */
  readonly renewShare?: number | undefined;
}

/**
 * The certificate of the set on disk (undefined when there is none); a set that is there but
 * broken (no certificate, not for key.pem) is AGENT_E_BOOTSTRAP_INVALID.
 */
export function describeSet(set: StoredSet, dir: string): HeldCert | undefined {
  if (!set.chainPem) return undefined;
  try {
    const first = extractCertificates(set.chainPem)[0];
    if (!first) throw new Error('no PEM certificate in it');
    const leaf = new X509Certificate(first);
    if (set.keyPem && !leaf.checkPrivateKey(createPrivateKey(set.keyPem))) {
      throw new Error(`it does not match ${path.join(dir, KEY_FILE)}`);
    }
    return {
      notBefore: Date.parse(leaf.validFrom),
      notAfter: Date.parse(leaf.validTo),
      serial: certSerial(leaf),
      issuer: set.meta.issuer,
      generation: set.generation,
      renewShare: validShare(set.meta.renewShare),
    };
  } catch (e) {
    throw new AgentError(
      'AGENT_E_BOOTSTRAP_INVALID',
      `${path.join(dir, CHAIN_FILE)}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** A set as the identity source chooses a credential from it: key, chain and its expiry. */
export function credentialInput(s: { keyPem?: string; chainPem?: string }): CredentialInput {
  let notAfter: number | undefined;
  const first = s.chainPem ? extractCertificates(s.chainPem)[0] : undefined;
  if (first) {
    try {
      notAfter = Date.parse(new X509Certificate(first).validTo);
    } catch {
      notAfter = undefined;
    }
  }
  return { keyPem: s.keyPem, chainPem: s.chainPem, notAfter };
}

/**
 * The files start needs: cert-chain.pem and key.pem for onprem (the credential of the first
 * CSR), root-cert.pem always; AGENT_E_BOOTSTRAP_MISSING naming the missing ones otherwise.
 */
export function checkPresent(set: StoredSet, source: IdentitySource['kind'], dir: string): void {
  const missing = [
    ...(source === 'onprem' && !set.chainPem ? [CHAIN_FILE] : []),
    ...(source === 'onprem' && !set.keyPem ? [KEY_FILE] : []),
    ...(!set.rootPem ? [ROOT_FILE] : []),
  ];
  if (missing.length > 0) {
    throw new AgentError(
      'AGENT_E_BOOTSTRAP_MISSING',
      `${missing.map((f) => path.join(dir, f)).join(', ')} missing; copy the bootstrap set (cert-chain.pem, key.pem, root-cert.pem from the istio.<service account> secret) to ${dir}`,
    );
  }
}

/** What a set on disk holds and whether it is sound, as `check` shows it. */
export interface SetInspection {
  /** Who made it: the agent (a CSR), or someone else (a bootstrap set). */
  readonly issuer: 'agent' | 'bootstrap';
  /** The leaf, when there is one that could be read. */
  readonly leaf?: {
    readonly identity: string | undefined;
    readonly serial: string;
    readonly notBefore: number;
    readonly notAfter: number;
  };
  /** What is wrong, with the code the agent reports it with; undefined when it is sound. */
  readonly problem?: { readonly code: ErrorCode; readonly message: string };
}

/**
 * Inspects a set, pure (`now` decides expiry): the files start needs are there (as
 * checkPresent), the leaf parses and is for key.pem, the chain verifies to root-cert.pem (the
 * one rule set, chain.ts), and the leaf is valid at `now`. Gcp without a certificate yet is
 * sound (it gets its first at start).
 */
export function inspectSet(
  set: StoredSet,
  source: IdentitySource['kind'],
  dir: string,
  now: number,
): SetInspection {
  const issuer = set.meta.issuer;
  try {
    checkPresent(set, source, dir);
  } catch (e) {
    const err = toAgentError(e);
    return { issuer, problem: { code: err.code, message: err.message } };
  }
  if (!set.chainPem) return { issuer };
  const chainFile = path.join(dir, CHAIN_FILE);
  let leaf: SetInspection['leaf'];
  const bad = (code: ErrorCode, message: string): SetInspection => ({
    issuer,
    ...(leaf ? { leaf } : {}),
    problem: { code, message },
  });
  try {
    const certs = extractCertificates(set.chainPem).map((b) => new X509Certificate(b));
    const first = certs[0];
    if (!first) return bad('AGENT_E_BOOTSTRAP_INVALID', `${chainFile} holds no certificate`);
    let identity: string | undefined;
    try {
      identity = identityOfCertificate(set.chainPem, chainFile);
    } catch {
      identity = undefined;
    }
    leaf = {
      identity,
      serial: first.serialNumber,
      notBefore: Date.parse(first.validFrom),
      notAfter: Date.parse(first.validTo),
    };
    if (set.keyPem && !first.checkPrivateKey(createPrivateKey(set.keyPem)))
      return bad(
        'AGENT_E_BOOTSTRAP_INVALID',
        `${path.join(dir, KEY_FILE)} does not match ${chainFile}`,
      );
    if (set.rootPem) {
      const roots = extractCertificates(set.rootPem).map((b) => new X509Certificate(b));
      const chain = verifyChain(certs, roots);
      if (!chain.ok) {
        return bad(
          'AGENT_E_CERT_CHAIN',
          'brokenAt' in chain
            ? `${chainFile}: certificate ${chain.brokenAt} is not signed by certificate ${chain.brokenAt + 1}`
            : `${chainFile} does not verify to ${path.join(dir, ROOT_FILE)}`,
        );
      }
    }
    if (leaf.notAfter <= now)
      return bad('AGENT_E_CERT_EXPIRED', `${chainFile}: the certificate has expired`);
    if (leaf.notBefore > now)
      return bad('AGENT_E_CERT_VALIDITY', `${chainFile}: the certificate is not valid yet`);
    return { issuer, leaf };
  } catch (e) {
    return bad('AGENT_E_BOOTSTRAP_INVALID', `${chainFile}: ${(e as Error).message}`);
  }
}
