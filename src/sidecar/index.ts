/**
 * The sidecar component: pilot-agent (as 1.0's istio-start.sh ran it) or envoy directly (the
 * agent doing pilot-agent's job), run as EXEC_USER, restarted with backoff, hot-restarted on
 * certificate rotation, never outliving the agent. See docs/decisions.md.
 */
import { constants, promises as fs } from 'node:fs';
import type { ComponentDeps } from '../component';
import type { ComponentFactory } from '../component';
import type { AgentConfig } from '../config/types';
import { resolveTrusted } from '../lib/safe-fs';
import { httpAdmin } from './admin';
import { wrapCommand } from './plan';
import { readHostFacts } from './host';
import { processLauncher } from './launcher';
import { RUNTIME_DEFAULTS, SidecarSupervisor, type SidecarRuntime } from './supervisor';
import { currentUser, lookupExecUser as lookupUser } from '../host/users';

export {
  SidecarSupervisor,
  resolvePlan,
  launchSpec,
  RUNTIME_DEFAULTS,
  type SidecarRuntime,
  type SidecarPlan,
} from './supervisor';

const TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];

async function isExecutable(file: string): Promise<boolean> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) return false;
    await fs.access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The real runtime: processes, HTTP to the admin port, NSS, /proc. */
export function defaultRuntime(deps: ComponentDeps): SidecarRuntime {
  return {
    ...RUNTIME_DEFAULTS,
    launcher: processLauncher,
    admin: (port) => httpAdmin(port),
    isRoot: process.getuid?.() === 0,
    processEnv: process.env,
    hostFacts: readHostFacts,
    lookupUser: (name) => lookupUser(deps.exec, name),
    currentUser,
    isExecutable,
    async findTool(name) {
      for (const dir of TOOL_DIRS) {
        const file = `${dir}/${name}`;
        if (!(await isExecutable(file))) continue;
        if (name === 'setpriv') {
          // --pdeathsig arrived in util-linux 2.33.
          const r = await deps.exec(file, ['--help'], { timeoutMs: 5000 }).catch(() => undefined);
          if (!r || !r.stdout.includes('--pdeathsig')) return undefined;
        }
        if (name === 'unshare') {
          // A sandbox may forbid new PID namespaces: the systemd unit has RestrictNamespaces=yes
          // and no CAP_SYS_ADMIN. Then pilot-agent runs without one (see the supervisor).
          const r = await deps
            .exec(file, ['--pid', '--fork', '--kill-child=SIGKILL', 'true'], { timeoutMs: 5000 })
            .catch(() => undefined);
          if (!r || r.code !== 0) return undefined;
        }
        return file;
      }
      return undefined;
    },
    async checkTrusted(file) {
      await resolveTrusted(file);
    },
    async envoyVersion(binary, wrap) {
      // As EXEC_USER (setpriv), never as root: the binary is the sidecar's.
      const cmd = wrapCommand(binary, ['--version'], wrap);
      const r = await deps.exec(cmd.file, cmd.args, { timeoutMs: 10_000 }).catch(() => undefined);
      if (!r || r.code !== 0) return undefined;
      return (r.stdout + r.stderr).trim() || undefined;
    },
  };
}

/** Builds the sidecar supervisor with the given runtime (tests pass stand-ins). */
export function createSidecar(
  config: AgentConfig,
  deps: ComponentDeps,
  runtime?: Partial<SidecarRuntime>,
): SidecarSupervisor {
  return new SidecarSupervisor(config, deps, { ...defaultRuntime(deps), ...runtime });
}

export const createSidecarComponent: ComponentFactory = (config, deps) => {
  if (config.sidecar.mode === 'none') {
    deps.log.child({ component: 'sidecar' }).info('SIDECAR_MODE=none: no sidecar is run');
    return Promise.resolve(undefined);
  }
  return Promise.resolve(createSidecar(config, deps));
};
