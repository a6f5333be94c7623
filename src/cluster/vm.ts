/**
 * What a VM needs from the cluster, put together: the addresses (given by hand or looked up),
 * cluster.env, and a VM's whole bundle. The commands `env`, `dns`, `bundle` and `setup` share
 * these steps.
 */
import { fetchCerts, type CertSummary } from './certs';
import {
  clusterEnvEntries,
  discoverServiceCidr,
  renderClusterEnv,
  type CpAuth,
  type ServiceCidrResult,
} from './env';
import type { EnvEntry } from './envfile';
import {
  ILB_ROLES,
  waitForIlbs,
  type GivenAddress,
  type IlbAddress,
  type IlbRole,
  type ServiceRef,
  type WaitOptions,
} from './ilb';
import { bundleFiles, renderInstallText, renderSidecarEnv } from './bundle';
import type { KubeApi } from './kube';
import type { OutFile } from './output';

export interface AddressRequest {
  /** The Services to look addresses up in. */
  readonly ilbs: Readonly<Record<IlbRole, ServiceRef>>;
  /** Addresses given by hand (`--pilot-ip` …): not looked up. */
  readonly given: Partial<Readonly<Record<IlbRole, GivenAddress>>>;
  readonly wait: WaitOptions;
}

/** The addresses of `roles`: the given ones as they are, the others from their Services. */
export async function gatherAddresses(
  api: KubeApi,
  roles: readonly IlbRole[],
  r: AddressRequest,
): Promise<Partial<Record<IlbRole, IlbAddress>>> {
  const out: Partial<Record<IlbRole, IlbAddress>> = {};
  const lookup: Partial<Record<IlbRole, ServiceRef>> = {};
  for (const role of roles) {
    const g = r.given[role];
    if (g) out[role] = { role, ip: g.ip, port: g.port, from: g.flag, given: true };
    else lookup[role] = r.ilbs[role];
  }
  if (Object.keys(lookup).length > 0) Object.assign(out, await waitForIlbs(api, lookup, r.wait));
  return out;
}

export interface EnvRequest extends AddressRequest {
  /** Where the dry-run probe for the service range runs. */
  readonly namespace: string;
  readonly istioNamespace: string;
  readonly cpAuth: CpAuth;
  readonly cpAuthGiven: boolean;
  /** `--service-cidr`: no discovery. */
  readonly serviceCidr?: readonly string[];
  readonly citadelAddress?: string;
  /** False with `--no-dns`: no DNS variables (the agent leaves DNS alone). */
  readonly dns: boolean;
}

export interface ClusterEnv {
  readonly text: string;
  readonly entries: readonly EnvEntry[];
  readonly notes: readonly string[];
}

export async function gatherClusterEnv(api: KubeApi, r: EnvRequest): Promise<ClusterEnv> {
  const serviceCidr: ServiceCidrResult =
    r.serviceCidr !== undefined
      ? {
          cidrs: r.serviceCidr,
          source: "the cluster's service range, given with --service-cidr",
          notes: [],
        }
      : await discoverServiceCidr(api, r.namespace);
  const roles = ILB_ROLES.filter(
    (role) => (role === 'citadel' && r.citadelAddress === undefined) || r.dns,
  );
  const addresses = await gatherAddresses(api, roles, r);
  const entries = clusterEnvEntries({
    serviceCidr,
    istioNamespace: r.istioNamespace,
    cpAuth: r.cpAuth,
    cpAuthGiven: r.cpAuthGiven,
    citadelAddress: r.citadelAddress,
    addresses,
    dns: r.dns,
  });
  return { text: renderClusterEnv(entries, api.target), entries, notes: serviceCidr.notes };
}

export interface BundleRequest extends EnvRequest {
  readonly vm: string;
  readonly serviceAccount: string;
  readonly secretPrefix: string;
  readonly trustDomain: string;
  readonly rootOnly: boolean;
  readonly service?: string;
  readonly inboundPorts?: string;
  readonly now: number;
}

export interface Bundle {
  readonly files: readonly OutFile[];
  readonly certs: CertSummary;
  readonly env: ClusterEnv;
}

export async function gatherBundle(api: KubeApi, r: BundleRequest): Promise<Bundle> {
  // The certificates first: a missing Secret should not wait for load balancers.
  const certs = await fetchCerts(api, {
    namespace: r.namespace,
    serviceAccount: r.serviceAccount,
    secretPrefix: r.secretPrefix,
    trustDomain: r.trustDomain,
    rootOnly: r.rootOnly,
    now: r.now,
  });
  const env = await gatherClusterEnv(api, r);
  const sidecarEnv = renderSidecarEnv(
    { vm: r.vm, namespace: r.namespace, service: r.service, inboundPorts: r.inboundPorts },
    env.text,
  );
  const files = bundleFiles({
    clusterEnv: env.text,
    sidecarEnv,
    certs: certs.set,
    installText: renderInstallText({
      vm: r.vm,
      context: api.target.context,
      certs: certs.summary,
      rootOnly: r.rootOnly,
    }),
  });
  return { files, certs: certs.summary, env };
}
