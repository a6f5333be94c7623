/**
 * What the certificate manager is made of, kept structural so it can be driven by any
 * implementation (the real gRPC client and store, or a test's). The CA's own types (the CSR, the
 * credential, the client) are owned by src/ca/types.ts, the identity sources' by
 * src/identity/types.ts.
 */
import type { CaClient, CaCredential } from '../ca/index';
import type { CaConfig, KeyAlgorithm } from '../config/types';
import type { IdentitySource } from '../identity/index';
import type { WorkloadKey } from './keys';
import type { CertStore } from './store';

/** What a CSR round uses of a CA client (`connect` optional: a test's client may not have it). */
export type CaClientLike = Pick<CaClient, 'sign' | 'close'> & Partial<Pick<CaClient, 'connect'>>;

/** Where and how to reach the CA: read at each CSR, so a reload applies at the next one. */
export type CaTarget = Pick<CaConfig, 'address' | 'serverName' | 'api' | 'callTimeoutMs'>;

/** Makes a CA client for one CSR, with this credential and trust anchor, for this CA. */
export type CaConnector = (
  credential: CaCredential,
  rootPem: string,
  target: CaTarget,
) => Promise<CaClientLike>;

/** What the manager uses of the store (an interface, so a test can hold the set in memory). */
export type CertStoreLike = Pick<
  CertStore,
  'dir' | 'check' | 'prepare' | 'read' | 'readBootstrap' | 'write' | 'notes'
>;

export interface CertManagerOptions {
  readonly ca: CaConfig;
  readonly store: CertStoreLike;
  readonly connect: CaConnector;
  readonly source: IdentitySource;
  /** Makes keys; injectable so a test can count or slow it. */
  readonly keygen?: (algorithm: KeyAlgorithm, rsaBits: number) => Promise<WorkloadKey>;
  /** Loads what the first CSR needs (the gRPC stack) while the key is being made. */
  readonly warmup?: () => Promise<unknown>;
  /** The first key, already being made (with the settings in `ca`); default: made here. */
  readonly firstKey?: Promise<WorkloadKey>;
}
