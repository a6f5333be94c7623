import type { Origin } from '../lib/errors';
import type { Cidr } from './net';

/** Everything the agent needs, read once from cluster.env, sidecar.env and the environment. */
export interface AgentConfig {
  readonly files: { readonly cluster: string; readonly sidecar: string };
  readonly core: CoreConfig;
  readonly ca: CaConfig;
  readonly capture: CaptureConfig;
  readonly dns: DnsConfig;
  readonly sidecar: SidecarConfig;
}

export interface CoreConfig {
  /** Where the agent keeps its own state (records of host changes, dev state). */
  readonly stateDir: string;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** ISTIO_SYSTEM_NAMESPACE, shared by DNS and the sidecar. */
  readonly systemNamespace: string;
  /**
   * ISTIO_AGENT_MONITORING_ADDR: where /healthz, /metrics and /debug/status listen (port 0: any
   * free port); undefined = off.
   */
  readonly monitoring: { readonly host: string; readonly port: number } | undefined;
}

export type CitadelEnv = 'onprem' | 'gcp' | 'auto';
export type CaApi = 'HandleCSR' | 'CreateCertificate';
export type KeyAlgorithm = 'RSA' | 'ECDSA';

export interface CaConfig {
  /** host:port of Citadel. */
  readonly address: string;
  /** TLS server name checked on Citadel's certificate (lets `address` be an IP). */
  readonly serverName: string;
  readonly env: CitadelEnv;
  readonly api: CaApi;
  readonly certsDir: string;
  readonly certTtlMs: number;
  /** Subject O= of the CSR. */
  readonly org: string;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly rsaKeySize: number;
  /** The identity to ask for; undefined = derive (onprem: bootstrap SAN; gcp: 1.0's rule). */
  readonly identity: string | undefined;
  /** Share of the lifetime after which renewal starts (0.5 = half-life, as Istio 1.0). */
  readonly renewRatio: number;
  /** Deadline of each CA call. */
  readonly callTimeoutMs: number;
  /**
   * The first CSR after start waits a random share of this when the certificate held is still
   * valid (a fleet starting at once does not hit the CA at once); never without a valid one.
   */
  readonly firstCsrJitterMs: number;
  readonly gceMetadataHost: string;
  readonly gceAudience: string;
}

export type InterceptionMode = 'REDIRECT' | 'TPROXY';

export interface CaptureConfig {
  readonly enabled: boolean;
  /** `'*'` = all outbound; [] = no outbound capture. */
  readonly serviceCidrs: '*' | readonly Cidr[];
  readonly serviceExcludeCidrs: readonly Cidr[];
  /** `'*'` = all inbound; [] = no inbound capture. */
  readonly inboundPorts: '*' | readonly number[];
  readonly localExcludePorts: readonly number[];
  readonly mode: InterceptionMode;
  readonly tproxyMark: number;
  readonly tproxyRouteTable: number;
  readonly envoyPort: number;
  readonly inboundCapturePort: number;
  readonly envoyUser: string;
  /**
   * Where ENVOY_USER was set; undefined when it was not (the default `istio-proxy`). A default
   * user that does not exist falls back to uid/gid 1337 as in 1.0; a configured one is an error.
   */
  readonly envoyUserOrigin: Origin | undefined;
  /** ENABLE_INBOUND_IPV6: capture inbound IPv6 on ISTIO_INBOUND_PORTS too (ip6tables). */
  readonly enableInboundIpv6: boolean;
  /** 1.0 rejected all inbound IPv6 unless ENABLE_INBOUND_IPV6 was set; we only do on request. */
  readonly rejectInboundIpv6: boolean;
  /** Which iptables backend to program; auto = the one the host already uses. */
  readonly backend: 'auto' | 'nft' | 'legacy';
  /** Keep the rules when the agent stops (fail closed) instead of removing them. */
  readonly keepOnStop: boolean;
  readonly checkIntervalMs: number;
}

/** How the host's resolver is pointed at dnsmasq on 127.0.0.1 (ISTIO_DNS_RESOLVER). */
export type DnsResolverMode =
  'auto' | 'dhclient' | 'resolv.conf' | 'resolved' | 'resolvconf' | 'none';

/** The cluster DNS server dnsmasq forwards `svc.<domain>` to. */
export interface DnsServer {
  readonly address: string;
  readonly family: 4 | 6;
  /** 53 unless ISTIO_DNS_SERVER names another port (e.g. 5353 of 1.0's ILB gateway). */
  readonly port: number;
}

export interface DnsConfig {
  /** On when ISTIO_DNS_SERVER or any of the address variables is set. */
  readonly enabled: boolean;
  readonly dnsServer: DnsServer | undefined;
  readonly clusterDomain: string;
  readonly pilotIp: string | undefined;
  readonly citadelIp: string | undefined;
  readonly mixerIp: string | undefined;
  /** dnsmasq's conf-dir; the drop-in is `<dropInDir>/kubedns`. */
  readonly dropInDir: string;
  readonly resolver: DnsResolverMode;
}

export type SidecarMode = 'pilot-agent' | 'envoy' | 'none' | 'auto';

/** envoy's `-l` levels. */
export type ProxyLogLevel = 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';

export interface SidecarConfig {
  readonly mode: SidecarMode;
  readonly binBase: string;
  /** Pilot's discovery address, `host:port` (PILOT_ADDRESS, default istio-pilot.<system ns>:<port>). */
  readonly pilotAddress: string;
  readonly pilotPort: number;
  /** From ISTIO_CP_AUTH; unset means MUTUAL_TLS, as 1.0.1's istio-start.sh. */
  readonly controlPlaneAuth: 'MUTUAL_TLS' | 'NONE';
  /** undefined = the host's primary non-loopback address, found at start. */
  readonly svcIp: string | undefined;
  /** undefined = the short hostname. */
  readonly podName: string | undefined;
  readonly namespace: string;
  readonly service: string;
  /** ISTIO_AGENT_FLAGS split on whitespace, as the unquoted shell expansion did. */
  readonly agentFlags: readonly string[];
  readonly execUser: string;
  readonly configDir: string;
  readonly adminPort: number;
  readonly drainSeconds: number;
  readonly parentShutdownSeconds: number;
  /** envoy `-l` (envoy mode). */
  readonly proxyLogLevel: ProxyLogLevel;
  /** envoy `--concurrency`; 0 = envoy's default (one worker per CPU). */
  readonly concurrency: number;
  /** How long `start` waits for envoy to report LIVE before the agent goes on without it. */
  readonly readyTimeoutMs: number;
  /** Child output lines forwarded to the journal per minute; 0 = no limit. */
  readonly logLinesPerMinute: number;
  /** ISTIO_META_<NAME>=value pairs, keyed by NAME: envoy node metadata. */
  readonly metadata: Readonly<Record<string, string>>;
}
