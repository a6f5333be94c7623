import * as path from 'node:path';
import { constants as C, promises as fs } from 'node:fs';
import type { Component, ComponentDeps, ComponentStatus, PreflightReport } from '../component';
import type { AgentConfig } from '../config/types';
import { resolveProxyIds, type UserIds } from '../host/users';
import { ioError } from '../lib/safe-fs';
import { chooseIdentitySource, type IdentitySource } from '../identity/index';
import { startKey, type WorkloadKey } from './keys';
import { CertManager } from './manager';
import { CertStore, CHAIN_FILE } from './store';
import type { CaConnector } from './types';

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
  readonly keyOwner?: UserIds | 'none';
}

/** What the certificate manager needs from the host, found by lookups (lookupCertSetup). */
export interface CertSetup {
  /** Owner of key.pem (the proxy user reads it); undefined: left as created. */
  readonly keyOwner: UserIds | undefined;
  readonly source: IdentitySource;
  /** The first key, when it is already being made (CertComponent starts it when built). */
  readonly firstKey?: Promise<WorkloadKey>;
}

/**
 * The host lookups the certificate component needs, with I/O: ENVOY_USER through passwd/NSS for
 * key.pem's owner (as root, unless given), and the identity source (CITADEL_ENV=auto probes the
 * GCE metadata server).
 */
export async function lookupCertSetup(
  config: AgentConfig,
  deps: Pick<ComponentDeps, 'exec' | 'log'>,
  options: CertComponentOptions = {},
): Promise<CertSetup> {
  let keyOwner = options.keyOwner === 'none' ? undefined : options.keyOwner;
  if (options.keyOwner === undefined && process.getuid?.() === 0) {
    // The proxy user (ENVOY_USER) reads the key; the same lookup as the capture rules use.
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
  const ca = config.ca;
  const source = await chooseIdentitySource(ca, path.join(ca.certsDir, CHAIN_FILE), deps.log);
  return { keyOwner, source };
}

/** The manager for this configuration and setup. Starts making the first key (thread pool). */
export function createCertManager(
  config: AgentConfig,
  deps: ComponentDeps,
  setup: CertSetup,
): CertManager {
  const ca = config.ca;
  return new CertManager(deps, {
    ca,
    store: new CertStore(ca.certsDir, {
      clock: deps.clock,
      ...(setup.keyOwner ? { keyOwner: setup.keyOwner } : {}),
    }),
    connect: caConnector(),
    warmup: loadCaClient,
    source: setup.source,
    ...(setup.firstKey ? { firstKey: setup.firstKey } : {}),
  });
}

/** The lookups, then the manager: for callers that build it outside an agent (dev, tests). */
export async function buildCertManager(
  config: AgentConfig,
  deps: ComponentDeps,
  options: CertComponentOptions = {},
): Promise<CertManager> {
  return createCertManager(config, deps, await lookupCertSetup(config, deps, options));
}

/**
 * The certificate component as `run` builds it. Building does no I/O on the host; it starts
 * making the first key in the thread pool (RSA-2048: ~50 ms, p90 ~90 ms), so the key is made
 * while the other components load and every preflight runs. Preflight does the host lookups
 * (lookupCertSetup), makes the manager and checks that the bootstrap set is there; start runs
 * the manager (built then if preflight was skipped); reload, stop and status are the manager's.
 */
export class CertComponent implements Component {
  readonly name = 'certs';
  private manager: CertManager | undefined;
  private readonly firstKey: Promise<WorkloadKey>;
  private setup: CertSetup | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly deps: ComponentDeps,
    private readonly options: CertComponentOptions = {},
  ) {
    // A failure is the first round's to report.
    this.firstKey = startKey(config.ca.keyAlgorithm, config.ca.rsaKeySize);
  }

  private async built(): Promise<CertManager> {
    if (!this.manager) {
      const setup = await lookupCertSetup(this.config, this.deps, this.options);
      this.setup ??= setup;
      this.manager ??= createCertManager(this.config, this.deps, {
        ...setup,
        firstKey: this.firstKey,
      });
    }
    return this.manager;
  }

  /**
   * The lookups, the files start needs, and (not root) that CERTS_DIR can be written: the set is
   * replaced there at each renewal, so a CERTS_DIR of root's is AGENT_E_NOT_ROOT now rather
   * than a failure after the first CSR.
   */
  async preflight(): Promise<PreflightReport> {
    await writableByUs(this.config.ca.certsDir);
    await (await this.built()).preflight();
    const owner = this.setup?.keyOwner;
    return {
      summary: `${this.setup?.source.kind ?? this.config.ca.env} identity, certificates in ${this.config.ca.certsDir}${owner ? ` (key.pem owned by ${owner.uid}:${owner.gid})` : ''}`,
    };
  }

  async start(signal: AbortSignal): Promise<void> {
    await (await this.built()).start(signal);
  }

  /** SIGHUP: certificate settings apply at the next CSR (CertManager.reload). */
  async reload(config: AgentConfig): Promise<void> {
    await this.manager?.reload(config);
  }

  async stop(): Promise<void> {
    await this.manager?.stop();
  }

  status(): ComponentStatus {
    return this.manager?.status() ?? { ready: false, summary: 'cert: none' };
  }
}

/**
 * Not root: `dir` (or, while it does not exist, the directory it would be made in) must be
 * writable by this user; AGENT_E_NOT_ROOT (another user's) or AGENT_E_IO (its mode) otherwise.
 * Root: nothing to check here (the trust checks are the store's).
 */
async function writableByUs(dir: string): Promise<void> {
  if ((process.geteuid?.() ?? 0) === 0) return;
  for (let cur = path.resolve(dir); ; cur = path.dirname(cur)) {
    try {
      await fs.access(cur, C.F_OK);
    } catch {
      if (cur !== '/') continue;
    }
    try {
      await fs.access(cur, C.W_OK | C.X_OK);
      return;
    } catch (e) {
      throw ioError(
        cur,
        cur === path.resolve(dir)
          ? 'cannot write the certificates (CERTS_DIR) to'
          : `cannot make CERTS_DIR ${dir} in`,
        e,
      );
    }
  }
}
