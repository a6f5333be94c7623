/** The sidecar's `status()`: a pure function of what the supervisor knows. */
import type { ComponentStatus } from '../component';
import type { ProxyState } from './admin';
import type { SidecarPlan } from './plan';

/** What the status shows of one running process. */
export interface EpochView {
  readonly epoch: number;
  readonly handle: { readonly pid: number | undefined };
  readonly role: 'current' | 'draining';
  readonly ready: boolean;
}

export interface SidecarView {
  readonly plan: SidecarPlan | undefined;
  readonly current: EpochView | undefined;
  readonly running: readonly EpochView[];
  readonly ready: boolean;
  /** pilot-agent mode: the epoch of its envoy. */
  readonly envoyEpoch: number | undefined;
  readonly state: ProxyState | undefined;
  readonly restarts: number;
  readonly consecutiveCrashes: number;
  /** Crash-looping: not ready, even while a process runs between two crashes. */
  readonly crashLoop: boolean;
  readonly lastExit: string | undefined;
  /** When the pending crash restart starts (clock milliseconds). */
  readonly restartAt: number | undefined;
  /** What is wrong, most important first: a crash loop, a failed launch, not LIVE in time. */
  readonly problems: readonly (string | undefined)[];
}

export function sidecarStatus(v: SidecarView): ComponentStatus {
  const plan = v.plan;
  if (!plan) return { ready: false, summary: 'sidecar not started' };
  const cur = v.current;
  const restarts = `${v.restarts} restart${v.restarts === 1 ? '' : 's'}`;
  let summary: string;
  if (plan.mode === 'envoy')
    summary = cur
      ? `sidecar envoy epoch ${cur.epoch}, ${restarts}`
      : `sidecar envoy down, ${restarts}`;
  else {
    const ep = v.envoyEpoch === undefined ? '' : ` (envoy epoch ${v.envoyEpoch})`;
    summary = cur
      ? `sidecar pilot-agent${ep}, ${restarts}`
      : `sidecar pilot-agent down, ${restarts}`;
  }
  if (cur && !v.ready) summary += ', not LIVE yet';
  const problem = v.problems.find((p) => p !== undefined);
  return {
    ready: v.ready && !v.crashLoop,
    summary,
    ...(problem === undefined ? {} : { problem }),
    details: {
      mode: plan.mode,
      binary: plan.binary,
      user: plan.user.name,
      uid: plan.user.uid,
      gid: plan.user.gid,
      serviceNode: plan.serviceNode,
      adminPort: plan.adminPort,
      pid: cur?.handle.pid,
      epoch: plan.mode === 'envoy' ? cur?.epoch : v.envoyEpoch,
      epochs: v.running.map((r) => ({
        epoch: r.epoch,
        pid: r.handle.pid,
        role: r.role,
        ready: r.ready,
      })),
      state: v.state,
      restarts: v.restarts,
      consecutiveCrashes: v.consecutiveCrashes,
      crashLoop: v.crashLoop,
      lastExit: v.lastExit,
      nextStartAt: v.restartAt === undefined ? undefined : new Date(v.restartAt).toISOString(),
    },
  };
}
