/**
 * The KubeApi on @kubernetes/client-node: kubeconfig loading (files, contexts, client
 * certificates, tokens, exec and auth-provider plugins, in-cluster) and the typed API calls.
 *
 * Built into its own file (dist/istio-node-agent-kube.cjs, see scripts/build.mjs) and loaded only
 * by `cluster` commands: the library is several MB of JavaScript that the daemon must never
 * parse. For the same reason this module imports nothing at run time from the rest of the
 * project (a class loaded twice would break `instanceof`): its types come from kube-types.ts
 * (types only), failures leave as plain data (KubeFailure) and src/cluster/errors.ts words them.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  NetworkingV1Api,
  NetworkingV1beta1Api,
  ServerConfiguration,
  createConfiguration,
  type Middleware,
  V1EndpointSlice,
  V1Endpoints,
  V1Service,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import type {
  ConnectOptions,
  KubeApi,
  KubeCall,
  KubeFailure,
  KubeFailureError,
  KubeTarget,
  ServiceCidrs,
} from './kube-types';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Thrown for a kubeconfig that cannot be used; `kubeconfigProblem` marks it for the caller. */
export interface KubeconfigError extends Error {
  readonly kubeconfigProblem: true;
}

function kubeconfigError(message: string): KubeconfigError {
  return Object.assign(new Error(message), { kubeconfigProblem: true as const });
}

function describeLoadError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message.split('\n')[0] ?? String(e);
}

/**
 * kubectl's rules: `--kubeconfig` alone; else every file of `KUBECONFIG` merged (the first one
 * wins for the current context); else `~/.kube/config`; else the in-cluster service account.
 * No fallback to an unauthenticated localhost:8080 (the library's last resort).
 */
export function loadKubeConfig(opts: ConnectOptions): { kc: KubeConfig; source: string } {
  const kc = new KubeConfig();
  const load = (into: KubeConfig, file: string): void => {
    try {
      into.loadFromFile(file);
    } catch (e) {
      throw kubeconfigError(`cannot load kubeconfig ${file}: ${describeLoadError(e)}`);
    }
  };
  let source: string;
  if (opts.kubeconfig !== undefined && opts.kubeconfig !== '') {
    load(kc, opts.kubeconfig);
    source = opts.kubeconfig;
  } else if (opts.env.KUBECONFIG) {
    const files = opts.env.KUBECONFIG.split(path.delimiter).filter((f) => f !== '');
    const present = files.filter((f) => existsSync(f));
    if (present.length === 0) {
      throw kubeconfigError(`none of the files in KUBECONFIG exists (${files.join(', ')})`);
    }
    load(kc, present[0]!);
    for (const f of present.slice(1)) {
      const more = new KubeConfig();
      load(more, f);
      try {
        kc.mergeConfig(more, true);
      } catch (e) {
        throw kubeconfigError(`cannot merge kubeconfig ${f}: ${(e as Error).message}`);
      }
    }
    source = present.join(path.delimiter);
  } else if (opts.env.HOME && existsSync(path.join(opts.env.HOME, '.kube', 'config'))) {
    source = path.join(opts.env.HOME, '.kube', 'config');
    load(kc, source);
  } else if (opts.env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) {
    kc.loadFromCluster();
    source = 'in-cluster service account';
  } else {
    throw kubeconfigError(
      'no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config (e.g. with your cloud CLI: gcloud container clusters get-credentials, aws eks update-kubeconfig, az aks get-credentials)',
    );
  }
  if (opts.context !== undefined && opts.context !== '') {
    if (!kc.getContexts().some((c) => c.name === opts.context)) {
      const names = kc.getContexts().map((c) => c.name);
      throw kubeconfigError(
        `${source} has no context "${opts.context}"${names.length ? `; it has: ${names.join(', ')}` : ''}`,
      );
    }
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentContext()) {
    throw kubeconfigError(`${source} sets no current-context; pass --context`);
  }
  const ctx = kc.getContextObject(kc.getCurrentContext());
  if (!ctx)
    throw kubeconfigError(
      `${source}: the current context "${kc.getCurrentContext()}" is not defined`,
    );
  if (!kc.getCurrentCluster()) {
    throw kubeconfigError(
      `${source}: context "${ctx.name}" names cluster "${ctx.cluster}", which is not defined`,
    );
  }
  return { kc, source };
}

function failure(call: KubeCall, e: unknown): KubeFailureError {
  let f: KubeFailure;
  if (e instanceof ApiException) {
    const status = typeof e.code === 'number' ? e.code : undefined;
    f = { call, status, body: e.body, message: `HTTP ${String(e.code)}` };
  } else {
    const err = e as NodeJS.ErrnoException & { type?: string; name?: string };
    const timedOut = err.name === 'AbortError' || err.type === 'aborted';
    const message = err.message ?? String(e);
    if (err.name === 'FetchError' || timedOut) {
      const errno = typeof err.code === 'string' ? err.code : undefined;
      f = { call, errno, timedOut, message };
    } else {
      // Before any request: the credential (an exec or auth-provider plugin, a token or
      // certificate file of the kubeconfig) could not be had.
      f = { call, credentials: true, message: message.trim() || String(e) };
    }
  }
  return Object.assign(new Error(f.message), { kubeFailure: f });
}

async function run<T>(call: KubeCall, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw failure(call, e);
  }
}

/** A get: `undefined` when the object is absent. */
async function get<T>(call: KubeCall, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw failure(call, e);
  }
}

export function connectKube(opts: ConnectOptions): KubeApi {
  const { kc, source } = loadKubeConfig(opts);
  const cluster = kc.getCurrentCluster()!;
  const ctx = kc.getContextObject(kc.getCurrentContext())!;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline: Middleware = {
    pre: (c: RequestContext) => {
      c.setSignal(AbortSignal.timeout(timeoutMs));
      return Promise.resolve(c);
    },
    post: (r: ResponseContext) => Promise.resolve(r),
  };
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [deadline],
  });
  const core = new CoreV1Api(configuration);
  const discovery = new DiscoveryV1Api(configuration);
  const networking = new NetworkingV1Api(configuration);
  const networkingBeta = new NetworkingV1beta1Api(configuration);
  const target: KubeTarget = {
    source,
    context: ctx.name,
    server: cluster.server,
    user: ctx.user,
    namespace: ctx.namespace ?? 'default',
  };
  const core1 = (verb: KubeCall['verb'], resource: string, namespace: string, name?: string) => ({
    verb,
    resource,
    group: '',
    namespace,
    ...(name !== undefined ? { name } : {}),
  });
  const slices = (verb: KubeCall['verb'], namespace: string, name?: string): KubeCall => ({
    verb,
    resource: 'endpointslices',
    group: 'discovery.k8s.io',
    namespace,
    ...(name !== undefined ? { name } : {}),
  });

  const listCidrs = async (
    version: string,
    list: () => Promise<{ items: { metadata?: { name?: string }; spec?: { cidrs?: string[] } }[] }>,
  ): Promise<ServiceCidrs | undefined> => {
    const call: KubeCall = {
      verb: 'list',
      resource: 'servicecidrs',
      group: 'networking.k8s.io',
    };
    try {
      const r = await list();
      return {
        version,
        items: r.items.map((i) => ({ name: i.metadata?.name ?? '', cidrs: i.spec?.cidrs ?? [] })),
      };
    } catch (e) {
      // Not served (an older cluster, or the beta not enabled): the group/version is unknown.
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw failure(call, e);
    }
  };

  return {
    target,
    getService: (namespace, name) =>
      get(core1('get', 'services', namespace, name), () =>
        core.readNamespacedService({ name, namespace }),
      ),
    createService: (namespace, body, o = {}) =>
      run(
        {
          ...core1('create', 'services', namespace, body.metadata?.name),
          dryRun: o.dryRun === true,
        },
        () =>
          core.createNamespacedService({
            namespace,
            body: Object.assign(new V1Service(), body),
            ...(o.dryRun ? { dryRun: 'All' } : {}),
          }),
      ),
    replaceService: (namespace, body) => {
      const name = body.metadata?.name ?? '';
      return run(core1('update', 'services', namespace, name), () =>
        core.replaceNamespacedService({
          name,
          namespace,
          body: Object.assign(new V1Service(), body),
        }),
      );
    },
    getEndpoints: (namespace, name) =>
      get(core1('get', 'endpoints', namespace, name), () =>
        core.readNamespacedEndpoints({ name, namespace }),
      ),
    createEndpoints: (namespace, body) =>
      run(core1('create', 'endpoints', namespace, body.metadata?.name), () =>
        core.createNamespacedEndpoints({ namespace, body: Object.assign(new V1Endpoints(), body) }),
      ),
    replaceEndpoints: (namespace, body) => {
      const name = body.metadata?.name ?? '';
      return run(core1('update', 'endpoints', namespace, name), () =>
        core.replaceNamespacedEndpoints({
          name,
          namespace,
          body: Object.assign(new V1Endpoints(), body),
        }),
      );
    },
    listEndpointSlices: async (namespace, labelSelector) =>
      (
        await run(slices('list', namespace), () =>
          discovery.listNamespacedEndpointSlice({ namespace, labelSelector }),
        )
      ).items,
    createEndpointSlice: (namespace, body) =>
      run(slices('create', namespace, body.metadata?.name), () =>
        discovery.createNamespacedEndpointSlice({
          namespace,
          body: Object.assign(new V1EndpointSlice(), body),
        }),
      ),
    replaceEndpointSlice: (namespace, body) => {
      const name = body.metadata?.name ?? '';
      return run(slices('update', namespace, name), () =>
        discovery.replaceNamespacedEndpointSlice({
          name,
          namespace,
          body: Object.assign(new V1EndpointSlice(), body),
        }),
      );
    },
    deleteEndpointSlice: async (namespace, name) => {
      try {
        await discovery.deleteNamespacedEndpointSlice({ name, namespace });
        return true;
      } catch (e) {
        if (e instanceof ApiException && e.code === 404) return false;
        throw failure(slices('delete', namespace, name), e);
      }
    },
    getSecret: (namespace, name) =>
      get(core1('get', 'secrets', namespace, name), () =>
        core.readNamespacedSecret({ name, namespace }),
      ),
    listServiceCidrs: async () =>
      (await listCidrs('networking.k8s.io/v1', () => networking.listServiceCIDR())) ??
      (await listCidrs('networking.k8s.io/v1beta1', () => networkingBeta.listServiceCIDR())),
  };
}
