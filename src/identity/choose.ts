import type { CaConfig } from '../config/types';
import type { Logger } from '../observe/index';
import { detectGce } from './gce';
import { gcpIdentity } from './gcp';
import { onpremIdentity } from './onprem';
import type { IdentitySource } from './types';

/** How long `CITADEL_ENV=auto` waits for the metadata server before choosing onprem. */
export const GCE_DETECT_TIMEOUT_MS = 1000;

/**
 * The identity source CITADEL_ENV names: onprem (the certificate in `chainFile`), gcp, or, for
 * auto, gcp when a GCE metadata server answers within GCE_DETECT_TIMEOUT_MS, else onprem.
 * Only auto does I/O (the probe), so it belongs in a component's preflight, not its factory.
 */
export async function chooseIdentitySource(
  ca: CaConfig,
  chainFile: string,
  log: Logger,
): Promise<IdentitySource> {
  if (ca.env === 'onprem') return onpremIdentity(chainFile);
  if (ca.env === 'gcp') return gcpIdentity(ca);
  const gce = await detectGce({ host: ca.gceMetadataHost, timeoutMs: GCE_DETECT_TIMEOUT_MS });
  log.info(
    { component: 'certs', gce },
    gce
      ? 'CITADEL_ENV=auto: the GCE metadata server answered, using gcp'
      : 'CITADEL_ENV=auto: no GCE metadata server, using onprem',
  );
  return gce ? gcpIdentity(ca) : onpremIdentity(chainFile);
}
