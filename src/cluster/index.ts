/**
 * The cluster half of mesh expansion, run on a workstation with a kubeconfig (`istio-node-agent
 * cluster …`): cluster.env, DNS addresses and bootstrap certificates from the cluster, a VM's
 * bundle and its setup over ssh, and registering VM services. Loaded only by the `cluster`
 * command; the Kubernetes client only on the first API call (kube.ts).
 */
export { connectKube, type ConnectOptions, type KubeApi, type KubeTarget } from './kube';
export {
  DEFAULT_CP_AUTH,
  discoverServiceCidr,
  clusterEnvEntries,
  isCpAuth,
  renderClusterEnv,
  type CpAuth,
  type ServiceCidrResult,
} from './env';
export { parseServiceCidrs } from './cidr';
export {
  DEFAULT_ISTIO_NAMESPACE,
  ILB_ROLES,
  addressFlag,
  defaultIlbs,
  dnsEntries,
  givenAddress,
  hostPort,
  ilbServices,
  parseServiceRef,
  renderKubedns10,
  waitForIlbs,
  type GivenAddress,
  type IlbAddress,
  type IlbRole,
  type ServiceRef,
} from './ilb';
export {
  citadelAddressProblem,
  clusterDomainProblem,
  inboundPortsProblem,
  ipProblem,
  isSshDestination,
  parseKeyValues,
  serviceNameProblem,
  vmNameProblem,
} from './inputs';
export { renderEnvFile, type EnvEntry } from './envfile';
export {
  CERT_FILES,
  DEFAULT_SECRET_PREFIX,
  DEFAULT_TRUST_DOMAIN,
  fetchCerts,
  spiffeIdentity,
  type CertSet,
  type CertSummary,
} from './certs';
export {
  bundleFiles,
  bundleTar,
  certFiles,
  renderInstallText,
  renderSidecarEnv,
  CONFIG_DIR,
  CERTS_DIR,
  UNIT,
} from './bundle';
export { prepareDir, writeFiles, type OutFile, type WriteOutcome } from './output';
export { parsePortSpecs, type NamedPort, type RequestedPort } from './ports';
export { register, deregister, type RegisterResult } from './register';
export {
  DEFAULT_SCP,
  DEFAULT_SSH,
  DEFAULT_START,
  DEFAULT_STATUS,
  parseTemplate,
  reachVm,
  setupVm,
  type SetupOptions,
  type SetupResult,
} from './setup';
export {
  gatherAddresses,
  gatherBundle,
  gatherClusterEnv,
  type AddressRequest,
  type Bundle,
  type BundleRequest,
  type ClusterEnv,
  type EnvRequest,
} from './vm';
export type { WaitOptions } from './ilb';
