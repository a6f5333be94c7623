import type { CaConfig } from '../config/types';
import { fetchIdentityToken, fetchServiceAccountEmail, gceIdentity } from './gce';
import type { IdentitySource } from './types';

/**
 * GCE identity (CITADEL_ENV=gcp): the default service account names the identity, and a fresh
 * identity token from the metadata server is the credential of every CSR (1.0 fetched it once at
 * start). A reload may change the metadata host, the audience and the call timeout.
 */
export function gcpIdentity(initial: CaConfig): IdentitySource {
  let ca = initial;
  return {
    kind: 'gcp',
    async defaultIdentity(_set, signal) {
      const email = await fetchServiceAccountEmail({
        host: ca.gceMetadataHost,
        timeoutMs: ca.callTimeoutMs,
        ...(signal ? { signal } : {}),
      });
      return gceIdentity(email);
    },
    async credential(_current, _bootstrap, _now, signal) {
      const token = await fetchIdentityToken({
        host: ca.gceMetadataHost,
        audience: ca.gceAudience,
        timeoutMs: ca.callTimeoutMs,
        ...(signal ? { signal } : {}),
      });
      return { kind: 'token', token, credentialType: 'gcp' };
    },
    reconfigure(next) {
      ca = next;
    },
  };
}
