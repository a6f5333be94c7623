/**
 * The sidecar's runtime port: everything the supervisor touches outside itself (processes, the
 * admin endpoint, users, host facts, tools) and its tunables. `defaultRuntime` wires the real
 * ones; tests replace them piece by piece. Building it does no I/O.
 */
import { constants, promises as fs } from 'node:fs';
import type { ComponentDeps } from '../component';
import type { BackoffPolicy } from '../lib/backoff';
import { resolveTrusted } from '../lib/safe-fs';
import { httpAdmin, type AdminClient } from './admin';
import { readHostFacts, type HostFacts } from './host';
import { processLauncher, type Launcher } from './launcher';
import type { ChildUser } from './plan';
import { HEALTHY_RESET_MS, RESTART_POLICY } from './policy';
import { currentUser, lookupExecUser as lookupUser } from '../host/users';
import { wrapCommand, type WrapOptions } from './wrap';

/** Everything the supervisor touches outside itself; the real ones below, stand-ins in tests. */
export interface SidecarRuntime {
  readonly launcher: Launcher;
  readonly admin: (port: number) => AdminClient;
  readonly isRoot: boolean;
  readonly processEnv: NodeJS.ProcessEnv;
  readonly hostFacts: () => Promise<HostFacts>;
  readonly lookupUser: (name: string) => Promise<ChildUser>;
  readonly currentUser: () => ChildUser;
  /** Path of the util-linux tool when installed, and (setpriv) new enough for --pdeathsig. */
  readonly findTool: (name: 'setpriv' | 'unshare') => Promise<string | undefined>;
  readonly isExecutable: (file: string) => Promise<boolean>;
  /**
   * Throws AGENT_E_UNSAFE_PATH unless `file` and every directory above it can be changed by
   * root alone: the agent (root) starts it.
   */
  readonly checkTrusted: (file: string) => Promise<void>;
  /** What `envoy --version` prints, or undefined; run as the sidecar's user (`wrap`), never root. */
  readonly envoyVersion: (binary: string, wrap: WrapOptions) => Promise<string | undefined>;
  readonly policy: BackoffPolicy;
  readonly healthyResetMs: number;
  /** Admin polling while the current process is not LIVE, and once it is. */
  readonly pollMs: number;
  readonly livePollMs: number;
  /** After SIGTERM, how long before SIGKILL. */
  readonly stopTimeoutMs: number;
  /** A draining epoch still alive this long after its parent-shutdown time is killed. */
  readonly drainKillGraceMs: number;
}

export const RUNTIME_DEFAULTS = {
  policy: RESTART_POLICY,
  healthyResetMs: HEALTHY_RESET_MS,
  pollMs: 250,
  livePollMs: 5000,
  stopTimeoutMs: 5000,
  drainKillGraceMs: 10_000,
} as const;

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
          // and no CAP_SYS_ADMIN. Then pilot-agent runs without one (see resolve.ts).
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
