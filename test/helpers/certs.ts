import { writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { tmpDir, type Teardown } from './tmp';

/** A fresh CERTS_DIR holding a bootstrap set as plain files, the 1.0 way; removed when `t` ends. */
export function bootstrapDir(
  t: Teardown,
  set: { certChainPem?: string; keyPem?: string; rootPem: string },
): string {
  const dir = path.join(tmpDir(t, 'agent-certs-', { mode: 0o700 }), 'certs');
  mkdirSync(dir);
  if (set.certChainPem) writeFileSync(path.join(dir, 'cert-chain.pem'), set.certChainPem);
  if (set.keyPem) writeFileSync(path.join(dir, 'key.pem'), set.keyPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'root-cert.pem'), set.rootPem);
  return dir;
}

/** Polls `cond` every 25 ms until true or `ms` pass. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The environment for `istio-node-agent run` with only the certificate component: no files
 * read, no capture, no sidecar, state in `stateDir`.
 */
export function certsOnlyEnv(
  caAddress: string,
  certsDir: string,
  stateDir: string,
  alg = 'ECDSA',
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ISTIO_CLUSTER_CONFIG: '/dev/null',
    ISTIO_SIDECAR_CONFIG: '/dev/null',
    CITADEL_ADDRESS: caAddress,
    CERTS_DIR: certsDir,
    ISTIO_AGENT_STATE_DIR: stateDir,
    ISTIO_CAPTURE: 'false',
    SIDECAR_MODE: 'none',
    WORKLOAD_KEY_ALGORITHM: alg,
    ENVOY_USER: 'root',
    // No spreading of the first CSR: what is measured and tested here is the path itself.
    CERT_FIRST_CSR_JITTER: '0',
    // Agents run side by side in tests and benches: each on a free loopback port, not on 15014.
    ISTIO_AGENT_MONITORING_ADDR: '127.0.0.1:0',
  };
}
