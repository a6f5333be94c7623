/**
 * `cluster env` (Istio 1.0 `setupMeshEx.sh generateClusterEnv`): the cluster.env every VM of
 * the mesh shares. The service range comes from the cluster (cidr.ts), Citadel's address and the
 * DNS variables from the internal load balancers (ilb.ts).
 */
import { AgentError } from '../lib/errors';
import {
  PROBE_IPS,
  canonicalCidrs,
  cidrsFromRangeError,
  familyNotConfigured,
  probeService,
} from './cidr';
import { failureStatus, failureToError } from './errors';
import { checkAgentAccepts, renderEnvFile, type EnvEntry } from './envfile';
import { dnsEntries, hostPort, type IlbAddress, type IlbRole } from './ilb';
import { isKubeFailure, type KubeApi } from './kube';

export interface ServiceCidrResult {
  readonly cidrs: readonly string[];
  /** For the comment above ISTIO_SERVICE_CIDR. */
  readonly source: string;
  /** What was tried and did not answer, for messages. */
  readonly notes: readonly string[];
}

/**
 * The service range: the ServiceCIDR API, else a dry-run probe per address family. Forbidden or
 * absent methods are noted and the next is tried; none answering is AGENT_E_CLUSTER_SERVICE_CIDR.
 */
export async function discoverServiceCidr(
  api: KubeApi,
  namespace: string,
): Promise<ServiceCidrResult> {
  const notes: string[] = [];
  try {
    const r = await api.listServiceCidrs();
    if (r === undefined)
      notes.push('the cluster does not serve the ServiceCIDR API (Kubernetes < 1.31)');
    else {
      const cidrs = canonicalCidrs(r.items.flatMap((i) => i.cidrs));
      if (cidrs.length > 0) {
        const names = r.items.filter((i) => i.cidrs.length > 0).map((i) => i.name);
        return {
          cidrs,
          source: `the cluster's service range: ServiceCIDR ${names.join(', ')} (${r.version})`,
          notes,
        };
      }
      notes.push('the ServiceCIDR API lists no range');
    }
  } catch (e) {
    if (failureStatus(e) !== 403) throw rethrow(e, api);
    notes.push(
      'listing servicecidrs (networking.k8s.io, cluster scope) is forbidden; the dry-run probe is tried instead',
    );
  }

  const found: string[] = [];
  const asked: string[] = [];
  probing: for (const family of [4, 6] as const) {
    for (const ip of PROBE_IPS[family]) {
      try {
        await api.createService(namespace, probeService(ip), { dryRun: true });
        // Accepted: the address is inside the range. Try the next one.
        continue;
      } catch (e) {
        const status = failureStatus(e);
        if (status === 403) {
          notes.push(`the dry-run probe was refused: ${(rethrow(e, api) as Error).message}`);
          break probing;
        }
        if (status !== 422 && status !== 400) throw rethrow(e, api);
        const body = isKubeFailure(e) ? e.kubeFailure.body : undefined;
        const cidrs = cidrsFromRangeError(body);
        if (cidrs.length > 0) {
          for (const c of cidrs) if (!found.includes(c)) found.push(c);
          asked.push(ip);
        } else if (!familyNotConfigured(body) && family === 4) {
          notes.push(`the API server's answer to a Service asking for ${ip} names no range`);
        }
        break;
      }
    }
  }
  if (found.length > 0) {
    return {
      cidrs: found,
      source: `the cluster's service range, from the API server's answer to a dry-run Service asking for ${asked.join(' and ')} in namespace ${namespace} (nothing was created)`,
      notes,
    };
  }
  throw new AgentError(
    'AGENT_E_CLUSTER_SERVICE_CIDR',
    `cannot find the cluster's service range: ${notes.join('; ') || 'no method answered'}; pass --service-cidr (kubectl cluster-info dump | grep service-cluster-ip-range, or your cloud's cluster description)`,
  );
}

/** A failed call as the AgentError that names it; anything else as it is. */
function rethrow(e: unknown, api: KubeApi): unknown {
  return isKubeFailure(e) ? failureToError(e.kubeFailure, api.target) : e;
}

/** ISTIO_CP_AUTH: how the sidecar authenticates to the control plane. */
export type CpAuth = 'MUTUAL_TLS' | 'NONE';

/** Istio 1.0's default (CONTROL_PLANE_AUTH_POLICY). */
export const DEFAULT_CP_AUTH: CpAuth = 'MUTUAL_TLS';

export function isCpAuth(text: string): text is CpAuth {
  return text === 'MUTUAL_TLS' || text === 'NONE';
}

export interface ClusterEnvInput {
  readonly serviceCidr: ServiceCidrResult;
  readonly istioNamespace: string;
  readonly cpAuth: CpAuth;
  readonly cpAuthGiven: boolean;
  /** `--citadel-address`, else derived from the citadel ILB. */
  readonly citadelAddress?: string;
  readonly addresses: Partial<Record<IlbRole, IlbAddress>>;
  /** Write the DNS variables (false with --no-dns: the agent then leaves DNS alone). */
  readonly dns: boolean;
}

/** The variables of cluster.env, each with its source. */
export function clusterEnvEntries(i: ClusterEnvInput): EnvEntry[] {
  const out: EnvEntry[] = [
    {
      key: 'ISTIO_SERVICE_CIDR',
      value: i.serviceCidr.cidrs.join(','),
      source: i.serviceCidr.source,
    },
    {
      key: 'ISTIO_SYSTEM_NAMESPACE',
      value: i.istioNamespace,
      source: "the Istio control plane's namespace (--istio-namespace; 1.0's ISTIO_NAMESPACE)",
    },
    {
      key: 'ISTIO_CP_AUTH',
      value: i.cpAuth,
      source: i.cpAuthGiven
        ? 'control-plane authentication, given with --cp-auth'
        : "control-plane authentication: Istio 1.0's default (CONTROL_PLANE_AUTH_POLICY); --cp-auth NONE for a plaintext control plane",
    },
  ];
  const cit = i.addresses.citadel;
  if (i.citadelAddress !== undefined) {
    out.push({
      key: 'CITADEL_ADDRESS',
      value: i.citadelAddress,
      source: 'Citadel, for the certificate: given with --citadel-address',
    });
  } else if (cit) {
    out.push({
      key: 'CITADEL_ADDRESS',
      value: hostPort(cit.ip, cit.port),
      source: cit.given
        ? `Citadel, for the certificate: given with ${cit.from}, port ${cit.port}`
        : `Citadel, for the certificate: the load-balancer address and port of ${cit.from} (checked as istio-citadel)`,
    });
  }
  if (i.dns) out.push(...dnsEntries(i.addresses));
  return out;
}

/** The file, checked with the agent's own parser and validation. */
export function renderClusterEnv(
  entries: readonly EnvEntry[],
  target: { context: string; server: string },
): string {
  const text = renderEnvFile(
    [
      'cluster.env for istio-node-agent (Istio mesh expansion), written by',
      `\`istio-node-agent cluster env\` from context "${target.context}" (${target.server}).`,
      'Install it on each VM as /var/lib/istio/envoy/cluster.env, owned by root, mode 0644;',
      'every variable is described in docs/configuration.md.',
    ],
    entries,
  );
  checkAgentAccepts([{ name: 'cluster.env', text }]);
  return text;
}
