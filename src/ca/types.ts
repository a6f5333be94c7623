/** The CA protocol layer's contracts: what the certificate component calls, what tests start. */
import type { status } from '@grpc/grpc-js';
import type { CaApi } from '../config/types';

/** Which of Citadel's two CSR APIs (CA_API): a configuration value, owned by config/types.ts. */
export type { CaApi };

export interface CsrRequest {
  readonly csrPem: string;
  /** The identity asked for (the CSR's SAN); sent as CreateCertificate's subject_id. */
  readonly identity: string;
  /** Requested lifetime; sent as whole minutes (HandleCSR, at least 1) or seconds (CreateCertificate). */
  readonly ttlMs: number;
  /** CreateCertificate only: sent as the request's `metadata` Struct (modern istio-agent sends CertSigner). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export type CaCredential =
  /** onprem: the CURRENT cert set: TLS client certificate, and the chain bytes as HandleCSR's credential. */
  | { readonly kind: 'mtls'; readonly certChainPem: string; readonly keyPem: string }
  /** gcp: server-only TLS plus `authorization: Bearer <token>`; the token is also HandleCSR's credential. */
  | { readonly kind: 'token'; readonly token: string; readonly credentialType: 'gcp' };

export interface CaClientOptions {
  /** host:port (an IP is fine: the name checked is serverName). */
  readonly address: string;
  /** Checked on the CA's certificate (grpc.ssl_target_name_override). */
  readonly serverName: string;
  /** Trust anchor for the CA's TLS certificate. */
  readonly rootPem: string;
  readonly api: CaApi;
  /** Deadline on every call. */
  readonly timeoutMs: number;
  readonly credential: CaCredential;
}

export interface CaClient {
  /**
   * Returns PEM certificates, leaf first, then intermediates (and root if the CA sends it).
   * Rejects with AgentError: AGENT_E_CA_UNAVAILABLE (retryable: unreachable/deadline/UNAVAILABLE),
   * AGENT_E_CA_AUTH (TLS handshake refused, UNAUTHENTICATED, PERMISSION_DENIED),
   * AGENT_E_CA_REJECTED (INVALID_ARGUMENT, INTERNAL signing error, is_approved=false),
   * AGENT_E_CA_BAD_RESPONSE (empty/malformed). When `signal` aborts, the call is cancelled and
   * the promise rejects with the signal's reason.
   */
  sign(req: CsrRequest, signal?: AbortSignal): Promise<string[]>;
  /**
   * Starts connecting (TCP and the TLS handshake) without waiting, so a caller that has other
   * work before its call (waiting for a key) overlaps the two. A call connects anyway.
   */
  connect(): void;
  close(): void;
}

export interface DevCaOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (ephemeral); reuse a port to "bring the CA back". */
  readonly port?: number;
  /** Lifetime of issued workload certs: the minimum of this and the requested TTL (0 = this). */
  readonly ttlMs: number;
  /**
   * Citadel's --max-workload-cert-ttl: a request above it is refused with INTERNAL
   * "CSR signing error" as Citadel 1.0 did. Default 90 days.
   */
  readonly maxTtlMs?: number;
  /** Reuse a root across restarts (PEM; ECDSA or RSA key, PKCS#8/SEC1/PKCS#1). */
  readonly root?: { readonly certPem: string; readonly keyPem: string };
  /** Issue through an intermediate (chain of 3). Default false. */
  readonly intermediate?: boolean;
  /** SANs of the CA's TLS cert; default istio-citadel, istio-ca, localhost, 127.0.0.1. */
  readonly serverNames?: readonly string[];
  /** Injected time for notBefore/notAfter and call records. */
  readonly clock?: () => number;
  /** gcp path: token → identity; undefined = rejected. */
  readonly tokenVerifier?: (token: string) => string | undefined;
  /** Test hook: rewrite the chain before it is returned (wrong key, wrong SAN, expired, foreign chain, garbage). */
  readonly tamper?: (chain: string[], call: CaCallRecord) => string[] | Promise<string[]>;
  /**
   * Test hook, run after authentication and before signing: return a fault to answer with a
   * gRPC error, `notApproved` (HandleCSR: is_approved=false), or a delay (to trip deadlines).
   */
  readonly fault?: (call: CaCallRecord) => DevCaFault | undefined | Promise<DevCaFault | undefined>;
  /** Keep at most this many records in `calls` (oldest dropped). Default 1000. */
  readonly maxCallRecords?: number;
  /** Called once per finished call (logging in the dev-ca command). Never gets secrets. */
  readonly onCall?: (call: CaCallRecord) => void;
}

export type DevCaFault =
  | {
      readonly kind: 'status';
      readonly code: status;
      readonly message: string;
      /**
       * Ask the client to wait this long before trying again, as a real server would under
       * load: in the `grpc-retry-pushback-ms` trailer, a `google.rpc.RetryInfo` in the
       * `grpc-status-details-bin` trailer, or both (`hint`, default 'pushback').
       */
      readonly retryAfterMs?: number;
      readonly hint?: 'pushback' | 'retry-info' | 'both';
    }
  | { readonly kind: 'notApproved' }
  | { readonly kind: 'delay'; readonly ms: number };

export interface CaCallRecord {
  readonly api: CaApi;
  readonly at: number;
  /**
   * What the client showed over mTLS (only a certificate that verified to the CA's root).
   * Serials are upper-case hex without separators (lib/cert-serial.ts); the fingerprint is SHA-256, colon-separated.
   */
  readonly peerCertSerial?: string;
  readonly peerCertSans?: readonly string[];
  readonly peerCertFingerprint?: string;
  /** What the client sent as authorization (tests only; never logged). */
  readonly bearer?: string;
  readonly credentialType?: string;
  /** Bytes of HandleCSR's node_agent_credential (tests only; never logged). */
  readonly nodeAgentCredential?: string;
  /** The identity the CA authenticated (client cert SAN or token verifier's answer). */
  readonly authenticatedIdentity?: readonly string[];
  /** CreateCertificate's subject_id. */
  readonly subjectId?: string;
  /** CreateCertificate's metadata (string values). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** SANs in the CSR. */
  readonly requestedIdentity?: readonly string[];
  readonly requestedTtlMs?: number;
  /** Serial number (hex) of the certificate issued. */
  readonly issuedSerial?: string;
  /** 'issued', or the gRPC error text. */
  readonly outcome: 'issued' | (string & {});
}

export interface DevCa {
  /** host:port, e.g. 127.0.0.1:<port>. */
  readonly address: string;
  readonly port: number;
  readonly rootPem: string;
  readonly rootKeyPem: string;
  /** The intermediate (when `intermediate` is set), else undefined. */
  readonly intermediatePem: string | undefined;
  readonly calls: readonly CaCallRecord[];
  /** Makes a bootstrap set as Citadel's `istio.<sa>` secret would: RSA-2048 (or ECDSA) key, cert with SAN=identity, signed by this CA. */
  issueBootstrap(
    identity: string,
    ttlMs: number,
    alg?: 'RSA' | 'ECDSA',
  ): Promise<{ certChainPem: string; keyPem: string; rootPem: string }>;
  stop(): Promise<void>;
}
