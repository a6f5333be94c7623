/**
 * The identity layer: what a CSR is authenticated with. It owns the IdentitySource contract and
 * both sources, on-prem (a certificate, mTLS) and gcp (a GCE identity token), the choice between
 * them (CITADEL_ENV), the GCE metadata client, and reading an identity from a certificate's SANs.
 */
export type { CredentialInput, IdentitySource } from './types';
export { onpremIdentity, chooseMtlsCredential } from './onprem';
export { gcpIdentity } from './gcp';
export { chooseIdentitySource, GCE_DETECT_TIMEOUT_MS } from './choose';
export * from './gce';
export {
  certificateSans,
  identityFromSans,
  identityOfCertificate,
  parseSubjectAltName,
  type SanEntry,
} from './san';
