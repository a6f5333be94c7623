import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as path from 'node:path';
import type { CredentialInput, IdentitySource } from '../identity/index';
import { certSerial } from '../lib/cert-serial';
import { AgentError } from '../lib/errors';
import { extractCertificates } from '../lib/pem';
import { CHAIN_FILE, KEY_FILE, ROOT_FILE, type StoredSet } from './store';

/** What the manager knows of the certificate held. */
export interface HeldCert {
  readonly notBefore: number;
  readonly notAfter: number;
  readonly serial: string;
  readonly issuer: 'agent' | 'bootstrap';
  readonly generation: string | undefined;
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
