import type { CaCredential } from '../ca/index';
import { AgentError } from '../lib/errors';
import { identityOfCertificate } from './san';
import type { CredentialInput, IdentitySource } from './types';

/**
 * On-prem identity: a certificate (first the bootstrap set, then each one the agent obtains)
 * presented as the TLS client certificate. Unlike Istio 1.0, which loaded it once at start and
 * failed at the second renewal (istio#22176), each CSR uses the current set; when that has
 * expired, the bootstrap set is tried if it is still valid.
 */
export function onpremIdentity(chainFile: string): IdentitySource {
  return {
    kind: 'onprem',
    defaultIdentity(set) {
      if (!set.chainPem)
        throw new AgentError('AGENT_E_BOOTSTRAP_MISSING', `${chainFile} is missing`);
      return Promise.resolve(identityOfCertificate(set.chainPem, chainFile));
    },
    credential(current, bootstrap, now) {
      return Promise.resolve(chooseMtlsCredential(current, bootstrap, now));
    },
  };
}

/** The current set while it is valid; else a still-valid bootstrap set; else the current one. */
export function chooseMtlsCredential(
  current: CredentialInput,
  bootstrap: CredentialInput,
  now: number,
): CaCredential {
  const usable = (s: CredentialInput): boolean => Boolean(s.keyPem && s.chainPem);
  const valid = (s: CredentialInput): boolean =>
    usable(s) && (s.notAfter === undefined || s.notAfter > now);
  const pick = valid(current)
    ? current
    : valid(bootstrap)
      ? bootstrap
      : usable(current)
        ? current
        : bootstrap;
  if (!usable(pick))
    throw new AgentError(
      'AGENT_E_BOOTSTRAP_MISSING',
      'no certificate and key to authenticate to the CA with',
    );
  return { kind: 'mtls', certChainPem: pick.chainPem!, keyPem: pick.keyPem! };
}
