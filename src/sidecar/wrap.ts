/**
 * How the sidecar is started: wrapped in util-linux setpriv (and unshare) so it runs as
 * EXEC_USER with no supplementary groups and cannot outlive the agent. Pure: builds the argv.
 */

export interface WrapOptions {
  /** Path of util-linux setpriv, when installed. */
  readonly setpriv: string | undefined;
  /** Path of util-linux unshare, when installed (root only). */
  readonly unshare: string | undefined;
  /** When root: the uid/gid to switch to (supplementary groups are cleared). undefined = stay. */
  readonly switchTo: { readonly uid: number; readonly gid: number } | undefined;
  /** Capabilities kept across the switch as ambient capabilities, e.g. `net_admin` for TPROXY. */
  readonly ambientCaps: readonly string[];
  /** Run in a new PID namespace so grandchildren (pilot-agent's envoy) die with the child. */
  readonly pidNamespace: boolean;
}

export interface Wrapped {
  readonly file: string;
  readonly args: string[];
  /** The program is a grandchild (pid 1 of a new PID namespace): signal it, not the wrapper. */
  readonly innerSignal: boolean;
  /** The child gets SIGKILL from the kernel when the agent dies. */
  readonly pdeathsig: boolean;
}

/**
 * Wraps `file args` so that:
 * - it runs as the given uid/gid with no supplementary groups (`setpriv --reuid --regid
 *   --clear-groups`), so iptables' owner match sees the sidecar's uid and gid;
 * - the kernel SIGKILLs it when the agent dies, even by SIGKILL (`--pdeathsig SIGKILL`, set after
 *   the uid switch, which would otherwise clear it);
 * - with `pidNamespace`, it is pid 1 of a new PID namespace under `unshare --pid --fork
 *   --kill-child`: when it dies the kernel kills everything it started, so pilot-agent's envoy
 *   cannot outlive the agent either. The outer setpriv ties unshare itself to the agent.
 */
export function wrapCommand(file: string, args: readonly string[], o: WrapOptions): Wrapped {
  if (!o.setpriv) return { file, args: [...args], innerSignal: false, pdeathsig: false };
  const caps = o.ambientCaps.length
    ? [
        '--inh-caps',
        o.ambientCaps.map((c) => `+${c}`).join(','),
        '--ambient-caps',
        o.ambientCaps.map((c) => `+${c}`).join(','),
      ]
    : [];
  const ids = o.switchTo
    ? [
        '--reuid',
        String(o.switchTo.uid),
        '--regid',
        String(o.switchTo.gid),
        '--clear-groups',
        ...caps,
      ]
    : [];
  const inner = [...ids, '--pdeathsig', 'SIGKILL', '--', file, ...args];
  if (o.pidNamespace && o.unshare) {
    return {
      file: o.setpriv,
      args: [
        '--pdeathsig',
        'SIGKILL',
        '--',
        o.unshare,
        '--pid',
        '--fork',
        '--kill-child=SIGKILL',
        '--',
        o.setpriv,
        ...inner,
      ],
      innerSignal: true,
      pdeathsig: true,
    };
  }
  return { file: o.setpriv, args: inner, innerSignal: false, pdeathsig: true };
}
