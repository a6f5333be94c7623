/**
 * What to run: gathers the facts through the runtime port (which binaries exist and are trusted,
 * the user, the tools, the host's address, envoy's version), hands them to the pure decisions
 * in plan.ts and checks.ts, logs their notes, and returns the plan. Throws the documented
 * AgentErrors, in the order the facts are gathered.
 */
import * as path from 'node:path';
import type { AgentConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import {
  checkCaptureUser,
  checkEnvoyVersion,
  checkPilotAgentCerts,
  checkSetpriv,
  checkUnshare,
  checkUser,
  type PlanNote,
} from './checks';
import {
  adminPortFromAgentFlags,
  childEnv,
  chooseMode,
  compatFlags,
  envoyBootstrap,
  needsHostFacts,
  parseEnvoyVersion,
  pilotAgentArgs,
  serviceNode,
  usesTproxy,
  wantsPidNamespace,
  workloadIds,
  wrapOptions,
  type SidecarPlan,
} from './plan';
import type { SidecarRuntime } from './runtime';

/** Resolves the plan: checks binaries, user and tools; throws the documented AgentErrors. */
export async function resolvePlan(
  config: AgentConfig,
  rt: SidecarRuntime,
  log: Logger,
): Promise<SidecarPlan> {
  const sc = config.sidecar;
  // Each note is logged as soon as it is known, so it is there even when a later step throws.
  const note = (n: PlanNote | undefined): void => {
    if (n?.fields) log[n.level](n.fields, n.msg);
    else if (n) log[n.level](n.msg);
  };
  const [pilotAgent, envoy] = await Promise.all([
    rt.isExecutable(path.join(sc.binBase, 'pilot-agent')),
    rt.isExecutable(path.join(sc.binBase, 'envoy')),
  ]);
  const mode = chooseMode(sc.mode, { pilotAgent, envoy }, sc.binBase);
  if (mode === 'none')
    throw new AgentError('AGENT_E_INTERNAL', 'resolvePlan called with SIDECAR_MODE=none');
  const binary = path.join(sc.binBase, mode);
  await rt.checkTrusted(binary);

  const user = rt.isRoot ? await rt.lookupUser(sc.execUser) : rt.currentUser();
  note(checkUser(user, sc.execUser, rt.isRoot));
  const setpriv = await rt.findTool('setpriv');
  note(checkSetpriv(setpriv, rt.isRoot));
  const pidNs = wantsPidNamespace(rt.isRoot, mode);
  const unshare = pidNs ? await rt.findTool('unshare') : undefined;
  if (pidNs) note(checkUnshare(unshare, Boolean(rt.processEnv.INVOCATION_ID)));

  const facts = needsHostFacts(sc) ? await rt.hostFacts() : undefined;
  const { svcIp, podName } = workloadIds(sc, facts);
  const node = serviceNode(svcIp, podName, sc.namespace);
  note(checkCaptureUser(config.capture, sc.execUser));
  const tproxy = usesTproxy(config.capture);
  const wrap = wrapOptions({ setpriv, unshare, isRoot: rt.isRoot, user, tproxy, mode });
  const env = childEnv(
    rt.processEnv,
    user,
    { ip: svcIp, podName, namespace: sc.namespace },
    sc.metadata,
  );

  let version: string | undefined;
  let compat: string[] = [];
  let adminPort = sc.adminPort;
  if (mode === 'envoy') {
    version = (
      await rt.envoyVersion(binary, { ...wrap, pidNamespace: false, ambientCaps: [] })
    )?.trim();
    const parsed = version === undefined ? undefined : parseEnvoyVersion(version);
    note(checkEnvoyVersion(binary, version, parsed));
    compat = compatFlags(parsed);
  } else {
    // pilot-agent picks its own admin port (default 15000, or --proxyAdminPort in ISTIO_AGENT_FLAGS).
    adminPort = adminPortFromAgentFlags(sc.agentFlags, 15000);
    note(checkPilotAgentCerts(config));
  }
  return {
    mode,
    binary,
    user,
    svcIp,
    podName,
    serviceNode: node,
    adminPort,
    env,
    wrap,
    compat,
    envoyVersion: version,
    bootstrap: mode === 'envoy' ? envoyBootstrap(config, node) : undefined,
    configDir: sc.configDir,
    serviceCluster: sc.service,
    drainSeconds: sc.drainSeconds,
    parentShutdownSeconds: sc.parentShutdownSeconds,
    logLevel: sc.proxyLogLevel,
    concurrency: sc.concurrency,
    pilotAgentArgs: mode === 'pilot-agent' ? pilotAgentArgs(sc) : [],
  };
}

/** The one line that says what runs, as whom, with which identity. */
export function logPlan(log: Logger, plan: SidecarPlan): void {
  log.info(
    {
      proxy: plan.mode,
      binary: plan.binary,
      user: plan.user.name,
      uid: plan.user.uid,
      gid: plan.user.gid,
      serviceNode: plan.serviceNode,
      adminPort: plan.adminPort,
      envoyVersion: plan.envoyVersion,
    },
    `sidecar: ${plan.mode} as ${plan.user.name} (${plan.user.uid}:${plan.user.gid}), node ${plan.serviceNode}`,
  );
}
