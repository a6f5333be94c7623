/**
 * The sidecar supervisor: one place that consumes every event (start, certificate rotation,
 * reconfiguration, a process exit, a due restart, a LIVE change, stop) and routes it to the pure
 * decisions in policy.ts. What runs is resolve.ts's; the processes are epochs.ts's; admin polling
 * is readiness.ts's; the crash-restart schedule is restarts.ts's. Actions run one at a time.
 */
import type { Component, ComponentDeps, ComponentStatus, PreflightReport } from '../component';
import type { AgentConfig } from '../config/types';
import { toAgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import type { AdminClient } from './admin';
import { Epochs, type Running } from './epochs';
import type { ExitInfo } from './launcher';
import { OutputForwarder } from './output';
import type { SidecarPlan } from './plan';
import { classifyExit, describeExit, onReconfigure, onRotation, rotationNote } from './policy';
import { Readiness } from './readiness';
import { logPlan, resolvePlan } from './resolve';
import { Restarts } from './restarts';
import type { SidecarRuntime } from './runtime';
import { sidecarStatus } from './status';

/** Why a process was started, for the restarts metric (the first start is not a restart). */
const RESTART_CAUSE: Readonly<Record<string, string>> = {
  'restart after exit': 'crash',
  'cert rotation': 'rotation',
  'configuration change': 'config',
};

export class SidecarSupervisor implements Component {
  readonly name = 'sidecar';
  private plan: SidecarPlan | undefined;
  /** The plan resolved by preflight, used by the start that follows. */
  private preflighted: SidecarPlan | undefined;
  private admin: AdminClient | undefined;
  private readonly log: Logger;
  private readonly output: OutputForwarder;
  /** Aborted by stop(): nothing starts any more, polling ends. */
  private readonly halt = new AbortController();
  private readonly epochs: Epochs;
  private readonly readiness: Readiness;
  private readonly restarts: Restarts;
  /** A hot restart waits for the current epoch to be LIVE. */
  private pendingRotation = false;
  private stopPromise: Promise<void> | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private config: AgentConfig,
    private readonly deps: ComponentDeps,
    private readonly rt: SidecarRuntime,
  ) {
    this.log = deps.log.child({ component: 'sidecar' });
    this.output = new OutputForwarder(this.log, deps.clock, config.sidecar.logLinesPerMinute);
    const { clock, random, changed } = deps;
    const base = { log: this.log, clock, halt: this.halt.signal };
    this.epochs = new Epochs({
      ...base,
      launcher: rt.launcher,
      output: this.output,
      stopTimeoutMs: rt.stopTimeoutMs,
      drainKillGraceMs: rt.drainKillGraceMs,
      onExit: (r, info) => {
        this.onExit(r, info);
      },
    });
    this.readiness = new Readiness({
      ...base,
      pollMs: rt.pollMs,
      livePollMs: rt.livePollMs,
      current: () => this.epochs.current,
      admin: () => this.admin,
      mode: () => this.plan!.mode,
      ready: () => this.isReady(),
      onChange: (live) => {
        this.onReadyChange(live);
      },
      changed,
    });
    this.restarts = new Restarts({
      ...base,
      random,
      policy: rt.policy,
      healthyResetMs: rt.healthyResetMs,
      label: () => this.plan?.mode ?? 'sidecar',
      due: () => void this.serial(() => this.restartNow('restart after exit')),
      changed,
    });
  }

  /** Resolves the plan (binary, EXEC_USER, setpriv, addresses) before anything changes. */
  async preflight(): Promise<PreflightReport> {
    const p = await resolvePlan(this.config, this.rt, this.log);
    this.preflighted = p;
    return {
      summary: `${p.mode} (${p.binary}) as ${p.user.name} (${p.user.uid}:${p.user.gid}), node ${p.serviceNode}`,
    };
  }

  async start(signal: AbortSignal): Promise<void> {
    const plan = this.preflighted ?? (await resolvePlan(this.config, this.rt, this.log));
    this.preflighted = undefined;
    this.plan = plan;
    this.admin = this.rt.admin(plan.adminPort);
    logPlan(this.log, plan);
    try {
      if (plan.mode === 'envoy') {
        await this.epochs.removeRevFiles(plan.configDir);
        await this.epochs.checkCertFiles(plan);
      }
      this.deps.events.on('certs-rotated', this.onRotated);
      this.readiness.start();
      await this.serial(() => this.launch('start'));
      const live = await this.readiness.waitReady(this.config.sidecar.readyTimeoutMs, signal);
      if (signal.aborted) {
        await this.stop();
        return;
      }
      if (!live) this.readiness.notLiveAfter(this.config.sidecar.readyTimeoutMs, plan);
    } catch (e) {
      await this.stop();
      throw toAgentError(e);
    }
  }

  async reload(next: AgentConfig): Promise<void> {
    if (this.stopping || !this.plan) return;
    const plan = await resolvePlan(next, this.rt, this.log);
    this.config = next;
    const old = this.plan;
    const action = onReconfigure(old, plan);
    if (action === 'none') return;
    this.plan = plan;
    const what = action === 'hot-restart' ? 'hot restart' : 'restarting the sidecar';
    this.log.info({ proxy: plan.mode }, `sidecar configuration changed: ${what}`);
    if (action === 'hot-restart') {
      const cur = this.epochs.current;
      // No current process: the pending restart starts with the new plan anyway.
      if (!cur) return;
      if (cur.ready) await this.serial(() => this.hotRestart('configuration change'));
      else this.pendingRotation = true;
      return;
    }
    await this.serial(async () => {
      // The pending crash restart is replaced by this start: its time goes from the status too.
      this.restarts.cancel();
      this.epochs.dropCurrent(); // their exits are not crashes
      await this.epochs.stopAll(old, true, this.admin);
      this.admin = this.rt.admin(plan.adminPort);
      if (plan.mode === 'envoy') await this.epochs.removeRevFiles(plan.configDir);
      await this.launchSafe('configuration change');
    });
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  status(): ComponentStatus {
    return sidecarStatus({
      plan: this.plan,
      current: this.epochs.current,
      running: this.epochs.running,
      ready: this.isReady(),
      envoyEpoch: this.readiness.envoyEpoch,
      state: this.readiness.lastProbe?.state,
      restarts: this.restarts.count,
      consecutiveCrashes: this.restarts.streak,
      crashLoop: this.restarts.crashLoop,
      lastExit: this.restarts.lastExit,
      restartAt: this.restarts.nextStartAt,
      problems: [...this.restarts.problems, this.readiness.problem],
    });
  }

  // ---- events ----

  private readonly onRotated = (info: { readonly generation: string }): void => {
    const plan = this.plan;
    if (!plan) return;
    const cur = this.epochs.current;
    const action = onRotation({
      mode: plan.mode,
      stopping: this.stopping,
      restartPending: this.restarts.pending,
      running: cur !== undefined,
      currentReady: cur?.ready ?? false,
    });
    const note = rotationNote(action, plan.mode, this.epochs.nextEpoch());
    if (note) this.log.info({ generation: info.generation, action }, note);
    if (action === 'defer') this.pendingRotation = true;
    if (action === 'restart-now') {
      this.restarts.cancel();
      void this.serial(() => this.restartNow('cert rotation'));
    }
    if (action === 'hot-restart') void this.serial(() => this.hotRestart('cert rotation'));
  };

  private onExit(r: Running, info: ExitInfo): void {
    const plan = this.plan!;
    const what = plan.mode === 'envoy' ? `envoy epoch ${r.epoch}` : 'pilot-agent';
    const fields = {
      proxy: plan.mode,
      epoch: r.epoch,
      pid: r.handle.pid,
      code: info.code,
      signal: info.signal,
    };
    const current = r === this.epochs.current;
    const kind = classifyExit({ stopping: this.stopping, stopRequested: r.stopRequested, current });
    if (kind !== 'crash') {
      if (kind === 'stopped') this.log.info(fields, `${what} stopped (${describeExit(info)})`);
      else
        this.log[info.code === 0 ? 'info' : 'warn'](
          fields,
          `${what} exited after the hot restart (${describeExit(info)})`,
        );
      this.deps.changed();
      return;
    }
    // The current process died on its own.
    this.epochs.dropCurrent();
    this.epochs.killAll(); // older epochs: a new epoch 0 needs them gone
    this.restarts.crashed(what, fields, info, this.deps.clock.now() - r.startedAt);
    this.readiness.kick();
    this.deps.changed();
  }

  private onReadyChange(live: boolean): void {
    if (live && this.pendingRotation) {
      this.pendingRotation = false;
      this.log.info(
        `hot-restarting envoy into epoch ${this.epochs.nextEpoch()} for the deferred rotation`,
      );
      void this.serial(() => this.hotRestart('cert rotation'));
    }
    this.deps.changed();
  }

  // ---- actions, run one at a time ----

  private serial(fn: () => Promise<void>): Promise<void> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private get stopping(): boolean {
    return this.halt.signal.aborted;
  }

  private isReady(): boolean {
    return !this.stopping && this.epochs.serving();
  }

  /** Starts the next process; it counts as healthy once it has run for `healthyResetMs`. */
  private async launch(reason: string): Promise<void> {
    const r = await this.epochs.launch(this.plan!, reason);
    if (!r) return;
    const cause = RESTART_CAUSE[reason];
    if (cause) this.deps.metrics?.inc('sidecar_restarts_total', { cause });
    this.restarts.started(() => r === this.epochs.current && !r.exit);
    this.readiness.kick();
    this.deps.changed();
  }

  /** launch(), turning a failure into a retry with backoff (the current process, if any, goes on). */
  private async launchSafe(reason: string): Promise<void> {
    try {
      await this.launch(reason);
    } catch (e) {
      this.restarts.launchFailed(toAgentError(e));
      this.deps.changed();
    }
  }

  /**
   * Starts the next envoy epoch, re-checking under the queue what the decision assumed: a current
   * epoch that is LIVE. If it has died meanwhile, the crash restart (new plan, new files) covers
   * it; if it is not LIVE (yet), the next epoch waits for it.
   */
  private async hotRestart(reason: string): Promise<void> {
    const cur = this.epochs.current;
    if (this.stopping || !cur || cur.exit) return;
    if (!cur.ready) {
      this.pendingRotation = true;
      return;
    }
    await this.launchSafe(reason);
  }

  private async restartNow(reason: string): Promise<void> {
    // Without a current process the old epochs were killed: envoy's epoch 0 needs them gone.
    if (!this.epochs.current) await this.epochs.allExited();
    if (this.stopping) return;
    await this.launchSafe(reason);
  }

  private async doStop(): Promise<void> {
    this.halt.abort();
    this.restarts.stop();
    this.deps.events.off('certs-rotated', this.onRotated);
    this.readiness.release();
    const plan = this.plan;
    if (plan) {
      await this.epochs.stopAll(plan, true, this.admin);
      await this.queue;
      await this.readiness.done();
      this.epochs.cancelDrainKills();
      if (plan.mode === 'envoy') await this.epochs.removeRevFiles(plan.configDir, false);
      this.log.info({ restarts: this.restarts.count }, 'sidecar stopped');
    }
    this.output.close();
    this.epochs.dropCurrent();
  }
}
