/**
 * The CA protocol layer: clients for Citadel's two CSR APIs and the embedded Citadel-compatible
 * dev CA. The dev CA (and @peculiar/x509 with it) loads only when started, so the daemon does
 * not pay for it.
 */
import type { DevCa, DevCaOptions } from './types';

export type {
  CaApi,
  CaCallRecord,
  CaClient,
  CaClientOptions,
  CaCredential,
  CsrRequest,
  DevCa,
  DevCaFault,
  DevCaOptions,
} from './types';
export { createCaClient } from './client';
export { probeCa, type CaProbeResult, type CaProbeTarget } from './probe';

export async function startDevCa(opts: DevCaOptions): Promise<DevCa> {
  const m = await import('./dev-ca');
  return m.startDevCa(opts);
}
