import type { Component, ComponentDeps, ComponentStatus } from '../component';
import type { ComponentFactory } from '../component';
import type { AgentConfig } from '../config/types';
import { chooseIdentitySource } from '../identity/index';
import { CertManager } from './manager';
import { CertStore, CHAIN_FILE } from './store';
import type { CaConnector } from './types';
import * as path from 'node:path';

export { CertManager } from './manager';
export { CertStore } from './store';

/** The gRPC stack loads on first use, so it can load while the first key is being made. */
const loadCaClient = () => import('../ca/index');

/** Connects to the CA the certificate component names at each CSR (a reload may change it). */
export function caConnector(): CaConnector {
  return async (credential, rootPem, target) => {
    const { createCaClient } = await loadCaClient();
    return createCaClient({
      address: target.address,
      serverName: target.serverName,
      rootPem,
      api: target.api,
      timeoutMs: target.callTimeoutMs,
      credential,
    });
  };
}

export interface CertComponentOptions {
  /** Owner of key.pem; default: ENVOY_USER when running as root, else unchanged. */
  readonly keyOwner?: { readonly uid: number; readonly gid: number } | 'none';
}

/** The certificate component for this configuration. */
export async function buildCertManager(
  config: AgentConfig,
  deps: ComponentDeps,
  options: CertComponentOptions = {},
): Promise<CertManager> {
  const ca = config.ca;
  let keyOwner = options.keyOwner === 'none' ? undefined : options.keyOwner;
  if (options.keyOwner === undefined && process.getuid?.() === 0) {
    // The proxy user (ENVOY_USER) reads the key; the same lookup as the capture rules use.
    const { resolveProxyIds } = await import('../netfilter/index');
    const r = await resolveProxyIds(config.capture, deps.exec);
    if (r.warning) {
      deps.log.warn(
        { component: 'certs', user: config.capture.envoyUser },
        `user ${config.capture.envoyUser} does not exist; key.pem stays owned by root`,
      );
    } else {
      keyOwner = r.ids;
    }
  }
  const source = await chooseIdentitySource(ca, path.join(ca.certsDir, CHAIN_FILE), deps.log);
  return new CertManager(deps, {
    ca,
    store: new CertStore(ca.certsDir, keyOwner ? { keyOwner } : {}),
    connect: caConnector(),
    warmup: loadCaClient,
    source,
  });
}

/**
 * The certificate component as `run` builds it: building does no I/O; the user lookup for the
 * key's owner and the CITADEL_ENV=auto probe of the metadata server (buildCertManager) happen in
 * preflight, with the check that the bootstrap set is there.
 */
class CertComponent implements Component {
  readonly name = 'certs';
  private manager: CertManager | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly deps: ComponentDeps,
  ) {}

  private async built(): Promise<CertManager> {
    this.manager ??= await buildCertManager(this.config, this.deps);
    return this.manager;
  }

  async preflight(): Promise<void> {
    await (await this.built()).preflight();
  }

  async start(signal: AbortSignal): Promise<void> {
    await (await this.built()).start(signal);
  }

  async stop(): Promise<void> {
    await this.manager?.stop();
  }

  status(): ComponentStatus {
    return this.manager?.status() ?? { ready: false, summary: 'cert: none' };
  }
}

export const createCertComponent: ComponentFactory = (config, deps) =>
  Promise.resolve(new CertComponent(config, deps));
