/**
 * The Kubernetes API as the cluster commands see it, as types only: the calls (KubeApi), where
 * they go (KubeTarget), how a failure is described (KubeFailure). Shared by kube.ts (which loads
 * the client) and kube-client.ts (the client, built into its own bundle file): this module has no
 * run-time code, so importing it brings nothing of the project into that bundle.
 */
import type { EndpointSlice, Endpoints, Secret, Service } from './types';

export type { EndpointSlice, Endpoints, Secret, Service };

export type KubeVerb = 'get' | 'list' | 'create' | 'update' | 'delete';

/** One API call, as RBAC sees it: what error messages name. */
export interface KubeCall {
  readonly verb: KubeVerb;
  /** Plural resource name, as in a Role: `services`, `endpointslices`. */
  readonly resource: string;
  /** API group; '' is the core group. */
  readonly group: string;
  /** Absent for cluster-scoped resources. */
  readonly namespace?: string;
  readonly name?: string;
  readonly dryRun?: boolean;
}

/**
 * What the client adapter throws when a call fails: plain data (the adapter lives in its own
 * bundle file, so no class is shared with it); `errors.ts` turns it into an AgentError.
 */
export interface KubeFailure {
  readonly call: KubeCall;
  /** HTTP status of the API's answer, when there was one. */
  readonly status?: number;
  /** The API's `Status` object (or its text) when it sent one. */
  readonly body?: unknown;
  /** Node's error code for a failure below HTTP (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, …). */
  readonly errno?: string;
  /** The request was aborted after the adapter's deadline. */
  readonly timedOut?: boolean;
  /** No request was made: the kubeconfig's credential (plugin, file) could not be had. */
  readonly credentials?: boolean;
  readonly message: string;
}

export interface KubeFailureError extends Error {
  readonly kubeFailure: KubeFailure;
}

/** Where the client connects, for messages. */
export interface KubeTarget {
  /** The kubeconfig file(s) read, or `in-cluster`. */
  readonly source: string;
  readonly context: string;
  readonly server: string;
  /** The kubeconfig user entry (the API decides who that is). */
  readonly user: string;
  /** The context's namespace, else `default`. */
  readonly namespace: string;
}

export interface ServiceCidrs {
  /** `networking.k8s.io/v1` or `networking.k8s.io/v1beta1`. */
  readonly version: string;
  readonly items: readonly { readonly name: string; readonly cidrs: readonly string[] }[];
}

/**
 * The calls. A `get` of something absent resolves `undefined`; every other failure rejects with
 * a KubeFailureError.
 */
export interface KubeApi {
  readonly target: KubeTarget;
  getService(namespace: string, name: string): Promise<Service | undefined>;
  createService(
    namespace: string,
    body: Service,
    opts?: { readonly dryRun?: boolean },
  ): Promise<Service>;
  replaceService(namespace: string, body: Service): Promise<Service>;
  getEndpoints(namespace: string, name: string): Promise<Endpoints | undefined>;
  createEndpoints(namespace: string, body: Endpoints): Promise<Endpoints>;
  replaceEndpoints(namespace: string, body: Endpoints): Promise<Endpoints>;
  listEndpointSlices(namespace: string, labelSelector: string): Promise<EndpointSlice[]>;
  createEndpointSlice(namespace: string, body: EndpointSlice): Promise<EndpointSlice>;
  replaceEndpointSlice(namespace: string, body: EndpointSlice): Promise<EndpointSlice>;
  /** Resolves false when it was already gone. */
  deleteEndpointSlice(namespace: string, name: string): Promise<boolean>;
  getSecret(namespace: string, name: string): Promise<Secret | undefined>;
  /** The ServiceCIDR objects' ranges; `undefined` when the cluster does not serve the API. */
  listServiceCidrs(): Promise<ServiceCidrs | undefined>;
}

export interface ConnectOptions {
  /** `--kubeconfig`: this file only. */
  readonly kubeconfig?: string;
  /** `--context`: instead of the kubeconfig's current context. */
  readonly context?: string;
  /** For `KUBECONFIG`, `HOME` and the in-cluster variables. */
  readonly env: NodeJS.ProcessEnv;
  /** Deadline of each API call. */
  readonly timeoutMs?: number;
}
