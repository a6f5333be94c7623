/** Stand-ins for the sidecar's unit tests: a launcher whose processes the test ends, an admin client. */
import type { AdminClient, Probe } from '../../src/sidecar/admin';
import type { ChildHandle, ExitInfo, LaunchSpec, Launcher } from '../../src/sidecar/launcher';
import type { SidecarPlan } from '../../src/sidecar/plan';

export interface FakeChild extends ChildHandle {
  readonly spec: LaunchSpec;
  /** What was sent to it, in order: 'TERM', 'KILL'. */
  readonly signals: string[];
  /** Ends the process with `info`. */
  exit(info?: ExitInfo): void;
}

export interface FakeLauncher extends Launcher {
  readonly children: FakeChild[];
}

/** `dieOn`: the signals a child exits on (default both; [] = a child that ignores even SIGKILL). */
export function fakeLauncher(dieOn: readonly ('TERM' | 'KILL')[] = ['TERM', 'KILL']): FakeLauncher {
  const children: FakeChild[] = [];
  let pid = 100;
  return {
    children,
    launch(spec) {
      let resolve!: (i: ExitInfo) => void;
      const exited = new Promise<ExitInfo>((r) => (resolve = r));
      const signals: string[] = [];
      let done = false;
      const exit = (info: ExitInfo = { code: 0, signal: null }): void => {
        if (done) return;
        done = true;
        resolve(info);
      };
      const child: FakeChild = {
        spec,
        signals,
        pid: ++pid,
        stdout: null,
        stderr: null,
        exited,
        exit,
        terminate() {
          signals.push('TERM');
          if (dieOn.includes('TERM')) exit({ code: 0, signal: null });
        },
        kill() {
          signals.push('KILL');
          if (dieOn.includes('KILL')) exit({ code: null, signal: 'SIGKILL' });
        },
      };
      children.push(child);
      return child;
    },
  };
}

export interface FakeAdmin extends AdminClient {
  /** What probe() answers next. */
  answer: Probe;
  readonly posts: string[];
  probes: number;
}

export function fakeAdmin(answer: Probe = { state: 'UNREACHABLE', epoch: undefined }): FakeAdmin {
  const a: FakeAdmin = {
    answer,
    posts: [],
    probes: 0,
    probe() {
      a.probes++;
      return Promise.resolve(a.answer);
    },
    post(path) {
      a.posts.push(path);
      return Promise.resolve(200);
    },
  };
  return a;
}

/** A pilot-agent plan: launching it writes no files. */
export const PILOT_AGENT_PLAN = {
  mode: 'pilot-agent',
  binary: '/opt/istio/pilot-agent',
  user: { name: 'istio-proxy', uid: 1337, gid: 1337, home: '/', shell: '/bin/sh' },
  svcIp: '10.0.0.5',
  podName: 'vm-1',
  serviceNode: 'sidecar~10.0.0.5~vm-1.ns~ns.svc.cluster.local',
  adminPort: 15000,
  env: { PATH: '/usr/bin' },
  wrap: {
    setpriv: undefined,
    unshare: undefined,
    switchTo: undefined,
    ambientCaps: [],
    pidNamespace: true,
  },
  compat: [],
  envoyVersion: undefined,
  bootstrap: undefined,
  configDir: '/nonexistent',
  serviceCluster: 'rawvm',
  drainSeconds: 2,
  parentShutdownSeconds: 3,
  logLevel: 'warning',
  concurrency: 0,
  pilotAgentArgs: ['proxy'],
} as const satisfies SidecarPlan;
