import { parseHostPort } from '../../lib/host-port';
import type { RawEnv } from '../raw';
import type { CaConfig } from '../types';

const DAY_MS = 86_400_000;

/** The longest workload certificate one may ask for: a year (Citadel's default cap is 90 days). */
export const MAX_CERT_TTL_MS = 365 * DAY_MS;
/** A CA call that takes longer than this is not coming back. */
export const MAX_CA_CALL_TIMEOUT_MS = 10 * 60_000;
/** The first CSR of a fleet is spread over at most this much (0 = not at all). */
export const MAX_FIRST_CSR_JITTER_MS = 5 * 60_000;

export function parseCa(raw: RawEnv): CaConfig {
  const address = raw.str('CITADEL_ADDRESS', 'istio-citadel:8060');
  if (!parseHostPort(address).ok) raw.report('CITADEL_ADDRESS', `"${address}" is not host:port`);
  const identity = raw.optStr('WORKLOAD_IDENTITY');
  if (identity !== undefined && !/^spiffe:\/\/[^/\s]+\/\S+$/.test(identity)) {
    raw.report('WORKLOAD_IDENTITY', `"${identity}" is not a spiffe:// URI`);
  }
  const metaHost = raw.str('GCE_METADATA_HOST', '169.254.169.254');
  if (/[\s/]/.test(metaHost))
    raw.report('GCE_METADATA_HOST', `"${metaHost}" is not a host or host:port`);
  return {
    address,
    serverName: raw.str('CITADEL_SERVER_NAME', 'istio-citadel'),
    env: raw.oneOf('CITADEL_ENV', ['onprem', 'gcp', 'auto'] as const, 'onprem'),
    api: raw.oneOf('CA_API', ['HandleCSR', 'CreateCertificate'] as const, 'HandleCSR'),
    certsDir: raw.str('CERTS_DIR', '/etc/certs'),
    certTtlMs: raw.duration('WORKLOAD_CERT_TTL', 90 * DAY_MS, 60_000, MAX_CERT_TTL_MS),
    org: raw.str('WORKLOAD_CERT_ORG', ''),
    keyAlgorithm: raw.oneOf('WORKLOAD_KEY_ALGORITHM', ['RSA', 'ECDSA'] as const, 'RSA', {
      caseInsensitive: true,
    }),
    rsaKeySize: rsaSize(raw),
    identity,
    renewRatio: raw.ratio('CERT_RENEW_RATIO', 0.5, 0.1, 0.9),
    callTimeoutMs: raw.duration('CA_CALL_TIMEOUT', 10_000, 100, MAX_CA_CALL_TIMEOUT_MS),
    firstCsrJitterMs: raw.duration('CERT_FIRST_CSR_JITTER', 2000, 0, MAX_FIRST_CSR_JITTER_MS),
    gceMetadataHost: metaHost,
    gceAudience: raw.str('GCE_IDENTITY_AUDIENCE', 'grpc://istio-citadel:8060'),
  };
}

function rsaSize(raw: RawEnv): number {
  const n = raw.int('WORKLOAD_RSA_KEY_SIZE', 2048, 2048, 8192);
  if (n % 1024 === 0) return n;
  raw.report('WORKLOAD_RSA_KEY_SIZE', `${n} is not a multiple of 1024`);
  return 2048;
}
