/**
 * What resolving the plan refuses (AgentError) or warns about (a PlanNote, data that resolve.ts
 * logs): the sidecar's user, the util-linux tools, capture's user, envoy's version, and where
 * pilot-agent looks for its certificates. Pure.
 */
import * as path from 'node:path';
import type { AgentConfig, CaptureConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import type { ChildUser } from './plan';

/** A warning (or debug note) about the plan: data, logged by whoever resolves the plan. */
export interface PlanNote {
  readonly level: 'warn' | 'debug';
  readonly fields?: Readonly<Record<string, unknown>>;
  readonly msg: string;
}

/**
 * The sidecar's user. As root: EXEC_USER as looked up, never uid 0. Otherwise the agent's own
 * user (no switch is possible), with a note when that is not EXEC_USER.
 */
export function checkUser(
  user: ChildUser,
  execUser: string,
  isRoot: boolean,
): PlanNote | undefined {
  if (isRoot) {
    if (user.uid !== 0) return undefined;
    throw new AgentError(
      'AGENT_E_CONFIG_VALUE',
      `EXEC_USER=${execUser} is uid 0: the sidecar must not run as root; use istio-proxy (the package creates it)`,
    );
  }
  if (user.name === execUser || String(user.uid) === execUser) return undefined;
  return {
    level: 'warn',
    fields: { execUser, runAs: user.name },
    msg: `not running as root: the sidecar runs as ${user.name}, not EXEC_USER=${execUser}`,
  };
}

/** setpriv switches the user and ties the child to the agent: required as root. */
export function checkSetpriv(setpriv: string | undefined, isRoot: boolean): PlanNote | undefined {
  if (setpriv) return undefined;
  if (isRoot) {
    throw new AgentError(
      'AGENT_E_MISSING_TOOL',
      'setpriv (util-linux 2.33 or later, with --pdeathsig) is needed to run the sidecar as EXEC_USER; install util-linux',
    );
  }
  return {
    level: 'warn',
    msg: 'setpriv with --pdeathsig not found: the sidecar will not be killed if the agent is killed',
  };
}

/** When pilot-agent's PID namespace is wanted but unshare is missing (or not allowed here). */
export function checkUnshare(
  unshare: string | undefined,
  underSystemd: boolean,
): PlanNote | undefined {
  if (unshare) return undefined;
  // Under systemd (INVOCATION_ID is set for every unit's processes) the unit's cgroup is killed
  // when the agent dies, so envoy cannot outlive it: only worth a warning elsewhere.
  return {
    level: underSystemd ? 'debug' : 'warn',
    msg:
      'unshare (util-linux) is missing or may not make a PID namespace here: envoy started by pilot-agent is not tied to the agent by the kernel' +
      (underSystemd
        ? ' (the systemd unit reaps it)'
        : ' and may outlive an agent killed by SIGKILL'),
  };
}

/** Capture lets ENVOY_USER's traffic through: when that is not EXEC_USER, the sidecar's loops. */
export function checkCaptureUser(capture: CaptureConfig, execUser: string): PlanNote | undefined {
  if (!capture.enabled || capture.envoyUser === execUser) return undefined;
  return {
    level: 'warn',
    fields: { envoyUser: capture.envoyUser, execUser },
    msg: `ENVOY_USER=${capture.envoyUser} (excluded from capture) differs from EXEC_USER=${execUser} (the sidecar's user): the sidecar's own traffic would be captured and loop`,
  };
}

/** `envoy --version` said nothing we can read: the flags for a current envoy are used. */
export function checkEnvoyVersion(
  binary: string,
  version: string | undefined,
  parsed: readonly number[] | undefined,
): PlanNote | undefined {
  if (parsed) return undefined;
  return {
    level: 'warn',
    fields: { binary, version },
    msg: `cannot tell ${binary}'s version; assuming a current envoy`,
  };
}

/** pilot-agent 1.0 reads its certificates from /etc/certs whatever CERTS_DIR says. */
export function checkPilotAgentCerts(config: AgentConfig): PlanNote | undefined {
  const certsDir = config.ca.certsDir;
  if (config.sidecar.controlPlaneAuth !== 'MUTUAL_TLS' || path.resolve(certsDir) === '/etc/certs')
    return undefined;
  return {
    level: 'warn',
    fields: { certsDir },
    msg: `pilot-agent reads its certificates from /etc/certs, but CERTS_DIR=${certsDir}`,
  };
}
