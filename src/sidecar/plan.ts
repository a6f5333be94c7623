/**
 * Pure decisions about what to run: which program, with which argv and environment, as which
 * user, and what to warn about. No I/O here: resolve.ts gathers the facts (which binaries exist,
 * the user's ids, the host's address, envoy's version), feeds them in and logs the notes.
 */
import { isIP } from 'node:net';
import * as path from 'node:path';
import type { AgentConfig, CaptureConfig, SidecarConfig, SidecarMode } from '../config/types';
import { AgentError } from '../lib/errors';
import { certFiles, revFileName, type BootstrapInput } from './bootstrap';
import { shortHostname, type HostFacts } from './host';
import type { LaunchSpec } from './launcher';
import { wrapCommand, type WrapOptions } from './wrap';

export type ProxyMode = 'pilot-agent' | 'envoy';

/** Ports Pilot 1.0 serves ADS on: plaintext, and mTLS (terminated by Pilot's own sidecar). */
export const PILOT_XDS_PORT = 15010;
export const PILOT_XDS_MTLS_PORT = 15011;

/** What SIDECAR_MODE resolves to, given which binaries ISTIO_BIN_BASE holds. */
export function chooseMode(
  mode: SidecarMode,
  present: { readonly pilotAgent: boolean; readonly envoy: boolean },
  binBase: string,
): ProxyMode | 'none' {
  if (mode === 'none') return 'none';
  if (mode === 'pilot-agent' || mode === 'envoy') {
    const ok = mode === 'pilot-agent' ? present.pilotAgent : present.envoy;
    if (!ok) {
      throw new AgentError(
        'AGENT_E_SIDECAR_BINARY',
        `SIDECAR_MODE=${mode} but ${binBase}/${mode} is missing or not executable; install it, fix ISTIO_BIN_BASE, or set SIDECAR_MODE`,
        { details: { mode, binBase } },
      );
    }
    return mode;
  }
  // auto: 1.0's istio-start.sh always ran pilot-agent, so prefer it when installed.
  if (present.pilotAgent) return 'pilot-agent';
  if (present.envoy) return 'envoy';
  throw new AgentError(
    'AGENT_E_SIDECAR_BINARY',
    `neither pilot-agent nor envoy is in ISTIO_BIN_BASE=${binBase}; install the Istio sidecar binaries there, or set SIDECAR_MODE=none to run without a sidecar`,
    { details: { mode, binBase } },
  );
}

/** `pilot-agent proxy …` exactly as 1.0.1's istio-start.sh built it. */
export function pilotAgentArgs(c: SidecarConfig): string[] {
  return [
    'proxy',
    ...c.agentFlags,
    '--serviceCluster',
    c.service,
    '--discoveryAddress',
    c.pilotAddress,
    '--controlPlaneAuthPolicy',
    c.controlPlaneAuth,
  ];
}

/** pilot-agent's admin port: `--proxyAdminPort` in ISTIO_AGENT_FLAGS (Go flag syntax), else `def`. */
export function adminPortFromAgentFlags(flags: readonly string[], def: number): number {
  for (let i = 0; i < flags.length; i++) {
    const m = /^--?proxyAdminPort(?:=(.*))?$/.exec(flags[i]!);
    if (!m) continue;
    const v = m[1] ?? flags[i + 1];
    if (v !== undefined && /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535)
      return Number(v);
  }
  return def;
}

/** envoy's `--service-node`: `Type~IP~ID~Domain`, ID = POD_NAME.NS, Domain = NS.svc.cluster.local. */
export function serviceNode(ip: string, podName: string, namespace: string): string {
  return `sidecar~${ip}~${podName}.${namespace}~${namespace}.svc.cluster.local`;
}

/** host:port parsing lives in lib/host-port.ts. */
import { splitHostPort } from '../lib/host-port';

export { splitHostPort };

/**
 * The namespace in Pilot's SPIFFE identity, by pilot-agent 1.0's rule on the discovery host:
 * one label (`istio-pilot`) → the workload's namespace; two (`istio-pilot.istio-system`) → the
 * second label; anything else (an IP, an FQDN) → the control-plane namespace. pilot-agent took
 * the last case from its own ISTIO_NAMESPACE environment or `istio-system`; on a VM that variable
 * holds the workload's namespace, so ISTIO_SYSTEM_NAMESPACE (default istio-system) is used here.
 */
export function controlPlaneNamespace(
  pilotHost: string,
  podNamespace: string,
  systemNamespace: string,
): string {
  if (isIP(pilotHost)) return systemNamespace;
  const labels = pilotHost.split('.');
  if (labels.length === 1) return podNamespace;
  if (labels.length === 2) return labels[1]!;
  return systemNamespace;
}

export function pilotSan(namespace: string): string {
  return `spiffe://cluster.local/ns/${namespace}/sa/istio-pilot-service-account`;
}

/** The xDS port 1.0 used whatever PILOT_ADDRESS's port: 15011 under MUTUAL_TLS, else 15010. */
export function pilotXdsPort(auth: 'MUTUAL_TLS' | 'NONE'): number {
  return auth === 'MUTUAL_TLS' ? PILOT_XDS_MTLS_PORT : PILOT_XDS_PORT;
}

/** `[major, minor, patch]` from `envoy --version` ("envoy  version: <sha>/1.8.0-dev/Clean/RELEASE/…"). */
export function parseEnvoyVersion(text: string): [number, number, number] | undefined {
  const m =
    /version:\s*\S*?\/(\d+)\.(\d+)\.(\d+)/.exec(text) ?? /\b(\d+)\.(\d+)\.(\d+)\b/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/**
 * 1.0's extra envoy flags that still make sense for this envoy. `--max-obj-name-len 189` lets
 * envoys before 1.11 accept Istio's long cluster names; 1.11 ignores it and 1.15 refuses to start
 * with it, so it is passed only when the version is known to be older than 1.11.
 * (`--v2-config-only` only changed how a bad bootstrap is reported; `--allow-unknown-fields`
 * relaxes parsing of a bootstrap we render ourselves: neither is needed.)
 */
export function compatFlags(version: readonly [number, number, number] | undefined): string[] {
  if (version && (version[0] < 1 || (version[0] === 1 && version[1] < 11)))
    return ['--max-obj-name-len', '189'];
  return [];
}

export interface EnvoyArgsInput {
  readonly configFile: string;
  readonly epoch: number;
  readonly drainSeconds: number;
  readonly parentShutdownSeconds: number;
  readonly serviceCluster: string;
  readonly serviceNode: string;
  readonly logLevel: string;
  readonly concurrency: number;
  readonly compat: readonly string[];
}

/** envoy's argv as pilot-agent 1.0 built it (flags that no longer make sense left out). */
export function envoyArgs(i: EnvoyArgsInput): string[] {
  return [
    '-c',
    i.configFile,
    '--restart-epoch',
    String(i.epoch),
    '--drain-time-s',
    String(i.drainSeconds),
    '--parent-shutdown-time-s',
    String(i.parentShutdownSeconds),
    '--service-cluster',
    i.serviceCluster,
    '--service-node',
    i.serviceNode,
    '-l',
    i.logLevel,
    ...(i.concurrency > 0 ? ['--concurrency', String(i.concurrency)] : []),
    ...i.compat,
  ];
}

/** Node metadata for the bootstrap: ISTIO_META_* plus INTERCEPTION_MODE when capture uses TPROXY. */
export function nodeMetadata(
  meta: Readonly<Record<string, string>>,
  tproxy: boolean,
): Record<string, string> {
  const out: Record<string, string> = { ...meta };
  // Pilot builds TPROXY listeners only when the node says so; 1.0 left this to the user.
  if (tproxy && out.INTERCEPTION_MODE === undefined) out.INTERCEPTION_MODE = 'TPROXY';
  return out;
}

/** The identity the child gets in HOME/USER/LOGNAME/SHELL, as `su` set them in 1.0. */
export interface ChildUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

/**
 * Variables that belong to the agent's own process or service and must not reach the sidecar:
 * systemd's notify/watchdog/socket-activation protocol (with NotifyAccess=all a child could
 * report readiness for us), our stdout being the journal, and Node's options.
 */
const AGENT_ONLY = new Set([
  'NOTIFY_SOCKET',
  'WATCHDOG_PID',
  'WATCHDOG_USEC',
  'LISTEN_PID',
  'LISTEN_FDS',
  'LISTEN_FDNAMES',
  'JOURNAL_STREAM',
  'MAINPID',
  'MANAGERPID',
  'NODE_OPTIONS',
]);

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function userVars(u: ChildUser): Record<string, string> {
  return { HOME: u.home, SHELL: u.shell, USER: u.name, LOGNAME: u.name };
}

/**
 * The sidecar's environment. pilot-agent's is what 1.0.1's `su -s /bin/bash -c "INSTANCE_IP=… POD_NAME=…
 * POD_NAMESPACE=… exec pilot-agent …" $EXEC_USER` gave it: the service's environment (minus the
 * agent-only variables above), the user's HOME/SHELL/USER/LOGNAME, the three pod variables, and
 * ISTIO_META_* (1.0 passed those only when exported; here they come from the env files too).
 * envoy inherited all of that from pilot-agent, so in envoy mode it gets the same.
 */
export function childEnv(
  processEnv: NodeJS.ProcessEnv,
  user: ChildUser,
  ids: { readonly ip: string; readonly podName: string; readonly namespace: string },
  meta: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(processEnv))
    if (v !== undefined && !AGENT_ONLY.has(k)) out[k] = v;
  out.PATH ??= DEFAULT_PATH;
  Object.assign(out, userVars(user));
  for (const [k, v] of Object.entries(meta)) out[`ISTIO_META_${k}`] = v;
  out.INSTANCE_IP = ids.ip;
  out.POD_NAME = ids.podName;
  out.POD_NAMESPACE = ids.namespace;
  return out;
}

/** What to run, resolved once per (re)configuration. */
export interface SidecarPlan {
  readonly mode: ProxyMode;
  readonly binary: string;
  readonly user: ChildUser;
  readonly svcIp: string;
  readonly podName: string;
  readonly serviceNode: string;
  readonly adminPort: number;
  readonly env: Readonly<Record<string, string>>;
  readonly wrap: WrapOptions;
  readonly compat: readonly string[];
  readonly envoyVersion: string | undefined;
  readonly bootstrap: BootstrapInput | undefined;
  readonly configDir: string;
  readonly serviceCluster: string;
  readonly drainSeconds: number;
  readonly parentShutdownSeconds: number;
  readonly logLevel: string;
  readonly concurrency: number;
  /** pilot-agent's argv (pilot-agent mode). */
  readonly pilotAgentArgs: readonly string[];
}

/** As root, pilot-agent runs in its own PID namespace (unshare) so that its envoy dies with it. */
export function wantsPidNamespace(isRoot: boolean, mode: ProxyMode): boolean {
  return isRoot && mode === 'pilot-agent';
}

/** Whether the host's facts are needed: ISTIO_SVC_IP or POD_NAME is not set. */
export function needsHostFacts(sc: Pick<SidecarConfig, 'svcIp' | 'podName'>): boolean {
  return sc.svcIp === undefined || sc.podName === undefined;
}

/** ISTIO_SVC_IP and POD_NAME, by default the host's primary address and short hostname. */
export function workloadIds(
  sc: Pick<SidecarConfig, 'svcIp' | 'podName'>,
  facts: HostFacts | undefined,
): { readonly svcIp: string; readonly podName: string } {
  const svcIp = sc.svcIp ?? facts?.primaryIp;
  if (svcIp === undefined) {
    throw new AgentError(
      'AGENT_E_CONFIG_VALUE',
      'this host has no non-loopback address to use as the workload IP; set ISTIO_SVC_IP',
      { origin: { file: 'default', line: 0, variable: 'ISTIO_SVC_IP' } },
    );
  }
  return { svcIp, podName: sc.podName ?? shortHostname(facts?.hostname ?? 'localhost') };
}

export function usesTproxy(capture: CaptureConfig): boolean {
  return capture.enabled && capture.mode === 'TPROXY';
}

/** How the child is wrapped, from the tools found and who we are. */
export function wrapOptions(i: {
  readonly setpriv: string | undefined;
  readonly unshare: string | undefined;
  readonly isRoot: boolean;
  readonly user: ChildUser;
  readonly tproxy: boolean;
  readonly mode: ProxyMode;
}): WrapOptions {
  return {
    setpriv: i.setpriv,
    unshare: i.unshare,
    switchTo: i.isRoot ? { uid: i.user.uid, gid: i.user.gid } : undefined,
    // TPROXY listeners need CAP_NET_ADMIN; 1.0 ran the sidecar as root for it instead.
    ambientCaps: i.tproxy && i.isRoot && i.user.uid !== 0 ? ['net_admin'] : [],
    pidNamespace: i.mode === 'pilot-agent',
  };
}

/** envoy's bootstrap input: node identity, admin port, Pilot's address and, under mTLS, TLS files. */
export function envoyBootstrap(config: AgentConfig, node: string): BootstrapInput {
  const sc = config.sidecar;
  const pilot = splitHostPort(sc.pilotAddress);
  const ns = controlPlaneNamespace(pilot.host, sc.namespace, config.core.systemNamespace);
  return {
    nodeId: node,
    cluster: sc.service,
    metadata: nodeMetadata(sc.metadata, usesTproxy(config.capture)),
    adminPort: sc.adminPort,
    pilotHost: pilot.host,
    pilotPort: pilotXdsPort(sc.controlPlaneAuth),
    tls:
      sc.controlPlaneAuth === 'MUTUAL_TLS'
        ? { ...certFiles(config.ca.certsDir), subjectAltNames: [pilotSan(ns)] }
        : undefined,
  };
}

/** The command line for one process (one envoy epoch, or pilot-agent). */
export function launchSpec(
  plan: SidecarPlan,
  epoch: number,
  configFile: string | undefined,
): LaunchSpec {
  const args =
    plan.mode === 'envoy'
      ? envoyArgs({
          configFile: configFile ?? path.join(plan.configDir, revFileName(epoch)),
          epoch,
          drainSeconds: plan.drainSeconds,
          parentShutdownSeconds: plan.parentShutdownSeconds,
          serviceCluster: plan.serviceCluster,
          serviceNode: plan.serviceNode,
          logLevel: plan.logLevel,
          concurrency: plan.concurrency,
          compat: plan.compat,
        })
      : [...plan.pilotAgentArgs];
  const w = wrapCommand(plan.binary, args, plan.wrap);
  return { file: w.file, args: w.args, env: plan.env, innerSignal: w.innerSignal };
}
