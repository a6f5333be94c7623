// Shared by the cluster tests: the CLI run in-process (`main`, as the binary runs it) and a
// kube-apiserver double holding what Istio 1.0's mesh expansion left in a cluster.
import type { Test } from 'tap';
import { tmpDir } from './tmp';
import { main } from '../../src/cli/index';
import {
  KubeApiServer,
  type KubeApiServerOptions,
  type KubeObject,
} from '../doubles/kube-apiserver';

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** `istio-node-agent cluster ARGS…` in this process, with `env` as its whole environment. */
export async function cluster(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliRun> {
  let out = '';
  let err = '';
  const code = await main(['cluster', ...args], {
    env,
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

/** The load-balancer addresses the tests give 1.0's ILB Services. */
export const ILB_IPS = {
  dns: '10.10.0.10',
  pilot: '10.10.0.7',
  citadel: '10.10.0.8',
  mixer: '10.10.0.9',
} as const;

export function lbService(
  namespace: string,
  name: string,
  ports: readonly { name: string; port: number; protocol?: string }[],
): KubeObject {
  return {
    metadata: {
      name,
      namespace,
      annotations: { 'cloud.google.com/load-balancer-type': 'Internal' },
    },
    spec: { type: 'LoadBalancer', ports: ports.map((p) => ({ protocol: 'TCP', ...p })) },
  };
}

/** 1.0's install/kubernetes/mesh-expansion.yaml Services; with `addresses`, already assigned. */
export function putMeshExpansion(server: KubeApiServer, addresses = true): void {
  const svcs: [
    string,
    string,
    keyof typeof ILB_IPS,
    { name: string; port: number; protocol?: string }[],
  ][] = [
    [
      'istio-system',
      'istio-pilot-ilb',
      'pilot',
      [
        { name: 'https-pilot', port: 15005 },
        { name: 'http-pilot', port: 8080 },
        { name: 'grpc-pilot', port: 15010 },
        { name: 'tls-grpc-pilot', port: 15011 },
      ],
    ],
    ['kube-system', 'dns-ilb', 'dns', [{ name: 'dns', port: 53, protocol: 'UDP' }]],
    ['istio-system', 'mixer-ilb', 'mixer', [{ name: 'grpc-mixer', port: 15004 }]],
    ['istio-system', 'citadel-ilb', 'citadel', [{ name: 'grpc-citadel', port: 8060 }]],
  ];
  for (const [ns, name, role, ports] of svcs) {
    server.put('services', lbService(ns, name, ports));
    if (addresses) server.setLoadBalancer(ns, name, [{ ip: ILB_IPS[role] }]);
  }
}

/** Citadel's `istio.<sa>` Secret holding a bootstrap set. */
export function istioSecret(
  namespace: string,
  sa: string,
  set: { certChainPem: string; keyPem: string; rootPem: string },
): KubeObject {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return {
    metadata: {
      name: `istio.${sa}`,
      namespace,
      annotations: { 'istio.io/service-account.name': sa },
    },
    type: 'istio.io/key-and-cert',
    data: {
      'cert-chain.pem': b64(set.certChainPem),
      'key.pem': b64(set.keyPem),
      'root-cert.pem': b64(set.rootPem),
    },
  };
}

/** A double for the test (closed at its end) and a kubeconfig with a token for it. */
export async function apiServer(
  t: Test,
  opts: KubeApiServerOptions = {},
): Promise<{ server: KubeApiServer; kubeconfig: string; dir: string }> {
  const server = await KubeApiServer.start({
    ...opts,
    tokens: { 'admin-token': { name: 'admin', groups: ['system:masters'] }, ...opts.tokens },
  });
  t.teardown(() => server.close());
  const dir = tmpDir(t, 'cluster-test-', { mode: 0o700 });
  const kubeconfig = server.kubeconfig(dir, { token: 'admin-token' });
  return { server, kubeconfig, dir };
}
