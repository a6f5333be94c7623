/**
 * The Kubernetes API as the cluster commands use it: a handful of calls on Services, Endpoints,
 * EndpointSlices, Secrets and ServiceCIDRs, behind an interface so the domain code is tested
 * with a fake and the real client (`./kube-client`, on @kubernetes/client-node) loads only when
 * a `cluster` command runs.
 *
 * The objects are plain data (types.ts), the interface and its failures types only
 * (kube-types.ts, which the client imports too); nothing of the client library is loaded by this
 * file.
 */
import { AgentError } from '../lib/errors';
import type { ConnectOptions, KubeApi, KubeFailureError } from './kube-types';

export type * from './kube-types';

/** A failure thrown by the client (plain data, see KubeFailure). */
export function isKubeFailure(e: unknown): e is KubeFailureError {
  return e instanceof Error && typeof (e as Partial<KubeFailureError>).kubeFailure === 'object';
}

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/**
 * Loads the kubeconfig and makes the client. The adapter and the client library are loaded here,
 * on first use: in the built CLI they are a second file beside the main one
 * (scripts/build.mjs), so the daemon never parses them.
 */
export async function connectKube(opts: ConnectOptions): Promise<KubeApi> {
  const m = await loadAdapter();
  try {
    return m.connectKube(opts);
  } catch (e) {
    if ((e as { kubeconfigProblem?: boolean }).kubeconfigProblem) {
      throw new AgentError('AGENT_E_CLUSTER_KUBECONFIG', (e as Error).message);
    }
    throw e;
  }
}

async function loadAdapter(): Promise<typeof import('./kube-client')> {
  try {
    return await import('./kube-client');
  } catch (e) {
    throw new AgentError(
      'AGENT_E_MISSING_TOOL',
      `the cluster commands' Kubernetes client could not be loaded (${(e as Error).message}); ` +
        'they ship as dist/istio-node-agent-kube.cjs beside dist/istio-node-agent.cjs in the npm ' +
        'build and are not part of the VM package: run them from a workstation build',
      { cause: e },
    );
  }
}
