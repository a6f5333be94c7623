/**
 * What the certificate component needs from the CA and identity layers. These mirror
 * src/ca/index.ts and src/identity/, kept structural so the rotator can be driven by any
 * implementation (the real gRPC client, or a test's).
 */
import type { CaConfig } from '../config/types';

export interface CsrRequest {
  readonly csrPem: string;
  readonly identity: string;
  readonly ttlMs: number;
}

export type CaCredential =
  | { readonly kind: 'mtls'; readonly certChainPem: string; readonly keyPem: string }
  | { readonly kind: 'token'; readonly token: string; readonly credentialType: 'gcp' };

export interface CaClientLike {
  sign(req: CsrRequest, signal?: AbortSignal): Promise<string[]>;
  close(): void;
}

/** Where and how to reach the CA: read at each CSR, so a reload applies at the next one. */
export type CaTarget = Pick<CaConfig, 'address' | 'serverName' | 'api' | 'callTimeoutMs'>;

/** Makes a CA client for one CSR, with this credential and trust anchor, for this CA. */
export type CaConnector = (
  credential: CaCredential,
  rootPem: string,
  target: CaTarget,
) => Promise<CaClientLike>;

/** How this host proves who it is. */
export interface IdentitySource {
  readonly kind: 'onprem' | 'gcp';
  /** The identity to request when none is configured. Aborting rejects with the signal's reason. */
  defaultIdentity(set: { readonly chainPem?: string }, signal?: AbortSignal): Promise<string>;
  /** The credential for the next CSR, given the current and bootstrap sets. */
  credential(
    current: CredentialInput,
    bootstrap: CredentialInput,
    now: number,
    signal?: AbortSignal,
  ): Promise<CaCredential>;
  /** Takes changed settings (SIGHUP) for the next request, e.g. the metadata host or audience. */
  reconfigure?(ca: CaConfig): void;
}

export interface CredentialInput {
  readonly keyPem?: string;
  readonly chainPem?: string;
  readonly notAfter?: number;
}
