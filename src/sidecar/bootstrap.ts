/**
 * envoy's bootstrap, rendered as pilot-agent 1.0 did from envoy_bootstrap_v2.json: a pure
 * function from data to the JSON envoy reads with `-c`. The v2 API, because Pilot 1.0 serves
 * only v2 ADS, and in the 1.0 field forms (`hosts`, `tls_context`) the envoys of that era accept.
 */
import * as path from 'node:path';

export interface BootstrapTls {
  readonly certChain: string;
  readonly privateKey: string;
  readonly rootCert: string;
  /** Pilot's identities, checked on its certificate. */
  readonly subjectAltNames: readonly string[];
}

export interface BootstrapInput {
  /** `--service-node`, also the node id. */
  readonly nodeId: string;
  /** `--service-cluster`. */
  readonly cluster: string;
  /** Node metadata (ISTIO_META_*); `istio: sidecar` is always added. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly adminPort: number;
  /** Pilot's host (name or IP, no brackets) and its ADS port. */
  readonly pilotHost: string;
  readonly pilotPort: number;
  /** Present under MUTUAL_TLS. */
  readonly tls: BootstrapTls | undefined;
}

/** Cluster name of the ADS connection, as 1.0 named it. */
export const XDS_CLUSTER = 'xds-grpc';

// 1.0's values: generous circuit breakers on the one control-plane connection, TCP keepalive.
const CB_LIMIT = 100000;

export function renderBootstrap(i: BootstrapInput): Record<string, unknown> {
  const xds: Record<string, unknown> = {
    name: XDS_CLUSTER,
    type: 'STRICT_DNS',
    connect_timeout: '1s',
    lb_policy: 'ROUND_ROBIN',
    hosts: [{ socket_address: { address: i.pilotHost, port_value: i.pilotPort } }],
    circuit_breakers: {
      thresholds: ['DEFAULT', 'HIGH'].map((priority) => ({
        priority,
        max_connections: CB_LIMIT,
        max_pending_requests: CB_LIMIT,
        max_requests: CB_LIMIT,
      })),
    },
    upstream_connection_options: { tcp_keepalive: { keepalive_time: 300 } },
    http2_protocol_options: {},
  };
  if (i.tls) {
    xds.tls_context = {
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificates: [
          {
            certificate_chain: { filename: i.tls.certChain },
            private_key: { filename: i.tls.privateKey },
          },
        ],
        validation_context: {
          trusted_ca: { filename: i.tls.rootCert },
          verify_subject_alt_name: [...i.tls.subjectAltNames],
        },
      },
    };
  }
  return {
    node: {
      id: i.nodeId,
      cluster: i.cluster,
      metadata: { ...i.metadata, istio: 'sidecar' },
    },
    stats_config: { use_all_default_tags: true },
    admin: {
      // 1.0 wrote admin access logs to /dev/stdout: one line per admin request, including our
      // readiness polls. Nobody reads them; they would only fill the journal.
      access_log_path: '/dev/null',
      address: { socket_address: { address: '127.0.0.1', port_value: i.adminPort } },
    },
    dynamic_resources: {
      lds_config: { ads: {} },
      cds_config: { ads: {} },
      ads_config: {
        api_type: 'GRPC',
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
      },
    },
    static_resources: { clusters: [xds] },
  };
}

export function bootstrapText(i: BootstrapInput): string {
  return JSON.stringify(renderBootstrap(i), null, 2) + '\n';
}

/** `envoy-rev<N>.json`, pilot-agent's file name for epoch N. */
export function revFileName(epoch: number): string {
  return `envoy-rev${epoch}.json`;
}

/** True for our bootstrap files and for temp files a crash during an atomic write left behind. */
export function isRevFile(name: string): boolean {
  return /^envoy-rev\d+\.json$/.test(name) || /^\.envoy-rev\d+\.json\.[0-9a-f]+\.tmp$/.test(name);
}

/** The TLS file set under `certsDir` (the certificate component's layout). */
export function certFiles(certsDir: string): Omit<BootstrapTls, 'subjectAltNames'> {
  return {
    certChain: path.join(certsDir, 'cert-chain.pem'),
    privateKey: path.join(certsDir, 'key.pem'),
    rootCert: path.join(certsDir, 'root-cert.pem'),
  };
}
