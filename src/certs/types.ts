/**
 * What the certificate component needs from the CA and identity layers. These mirror
 * src/ca/index.ts and src/identity/, kept structural so the rotator can be driven by any
 * implementation (the real gRPC client, or a test's).
 */
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

/** Makes a CA client for one CSR, with this credential and trust anchor. */
export type CaConnector = (credential: CaCredential, rootPem: string) => CaClientLike;

/** How this host proves who it is. */
export interface IdentitySource {
  readonly kind: 'onprem' | 'gcp';
  /** The identity to request when none is configured. */
  defaultIdentity(set: { readonly chainPem?: string }): Promise<string>;
  /** The credential for the next CSR, given the current and bootstrap sets. */
  credential(
    current: CredentialInput,
    bootstrap: CredentialInput,
    now: number,
    signal?: AbortSignal,
  ): Promise<CaCredential>;
}

export interface CredentialInput {
  readonly keyPem?: string;
  readonly chainPem?: string;
  readonly notAfter?: number;
}
