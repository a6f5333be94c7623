/**
 * What the certificate component needs from the CA layer, kept structural so the rotator can be
 * driven by any implementation (the real gRPC client, or a test's). The CA's own types (the CSR,
 * the credential, the client) are owned by src/ca/types.ts, the identity sources' by
 * src/identity/types.ts.
 */
import type { CaClient, CaCredential } from '../ca/index';
import type { CaConfig } from '../config/types';

/** What a CSR round uses of a CA client. */
export type CaClientLike = Pick<CaClient, 'sign' | 'close'>;

/** Where and how to reach the CA: read at each CSR, so a reload applies at the next one. */
export type CaTarget = Pick<CaConfig, 'address' | 'serverName' | 'api' | 'callTimeoutMs'>;

/** Makes a CA client for one CSR, with this credential and trust anchor, for this CA. */
export type CaConnector = (
  credential: CaCredential,
  rootPem: string,
  target: CaTarget,
) => Promise<CaClientLike>;
