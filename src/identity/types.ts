/** The identity layer's contract: how this host proves who it is when it asks for a certificate. */
import type { CaCredential } from '../ca/index';
import type { CaConfig } from '../config/types';

/** What the credential is chosen from: a certificate set (current or bootstrap) as read. */
export interface CredentialInput {
  readonly keyPem?: string;
  readonly chainPem?: string;
  readonly notAfter?: number;
}

/** How this host proves who it is: an on-prem certificate (onprem.ts) or GCE's token (gcp.ts). */
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
