import type { Component, ComponentDeps, ComponentStatus, PreflightReport } from '../component';
import type { AgentConfig, CaptureConfig } from '../config/types';
import type { TimerHandle } from '../lib/clock';
import { AgentError, toAgentError } from '../lib/errors';
import { withHostLock } from '../lib/lock';
import { SerialQueue } from '../lib/serial';
import { NO_METRICS, type Logger, type Metrics } from '../observe/index';
import { resolveProxyIds } from '../host/users';
import { applyPlan } from './apply';
import { families, restoreCommand, sameProgram, saveCommand, type BackendName } from './backend';
import { cleanCapture } from './clean';
import { diffLive } from './diff';
import { prepare, readLive, readLiveWith, type CaptureIo } from './io';
import { transaction } from './live';
import { planCapture, samePlan, type CapturePlan, type IpFamily, type ProxyIds } from './plan';
import { driftLine } from './present';

/**
 * Traffic capture as a daemon component: applies the plan before the agent reports ready,
 * checks every `checkIntervalMs` that the live rules still match and repairs drift (with a
 * warning), applies a changed plan on reload, and cleans on stop unless told to keep the rules
 * (fail closed).
 */
export class CaptureComponent implements Component {
  readonly name = 'capture';
  /**
   * After the certificates: the first CSR must reach the CA as the host is, not through capture
   * (a CA on this host's loopback, or inside ISTIO_SERVICE_CIDR or `*`, would be redirected to
   * an envoy that cannot start without that certificate). Not after DNS (src/start-order.ts).
   */
  readonly startsAfter: readonly string[] = ['certs'];
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private cfg: CaptureConfig;
  private stateDir: string;
  private plan: CapturePlan | undefined;
  private backend: BackendName | undefined;
  private families: IpFamily[] = [];
  /** The proxy user's ids the plan was made for. */
  private ids: ProxyIds | undefined;
  private timer: TimerHandle | undefined;
  private readonly queue = new SerialQueue();
  private stopped = false;
  private applied = false;
  /** This run's start may have changed rules (set before the first restore). */
  private touched = false;
  /** Rules of ours were there before this run's start (kept by an earlier run). */
  private hadRulesBefore = false;
  /** Capture switched off by a reload (ISTIO_CAPTURE=false): "off" is then the desired state. */
  private disabled = false;
  private problem: string | undefined;
  private repairs = 0;
  private lastCheck: number | undefined;

  constructor(
    config: AgentConfig,
    private readonly deps: ComponentDeps,
  ) {
    this.cfg = config.capture;
    this.stateDir = config.core.stateDir;
    this.log = deps.log.child({ component: 'capture' });
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  private get io(): CaptureIo {
    return { exec: this.deps.exec, stateDir: this.stateDir };
  }

  /**
   * Runs host work one piece at a time (a check never overlaps a reload or stop), each piece
   * under the state directory's capture lock (`iptables apply|clean` take it too).
   */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    return this.queue.run(() =>
      withHostLock(this.stateDir, 'capture', 'istio-node-agent (capture)', work),
    );
  }

  /**
   * Reads the live rules and plans (ENVOY_USER must exist, a backend must work), and checks that
   * the restore program of each family is there. Changes nothing. Not root: AGENT_E_NOT_ROOT
   * (iptables-save would fail as if iptables were missing).
   */
  async preflight(): Promise<PreflightReport> {
    const uid = process.geteuid?.() ?? 0;
    if (uid !== 0) {
      // ENVOY_USER can be looked up without root: a wrong one is reported as such first.
      await resolveProxyIds(this.cfg, this.deps.exec);
      throw new AgentError(
        'AGENT_E_NOT_ROOT',
        `traffic capture programs the host's iptables rules, which needs root (this runs as uid ${uid}): run the agent as root (the systemd unit does), or set ISTIO_CAPTURE=false`,
      );
    }
    // As start reads: ip6tables only when a rule of ours can be there.
    const { live, plan, resolved } = await prepare(this.io, this.cfg, this.cfg.backend, {
      skipUnusedIpv6: true,
    });
    for (const f of families(live)) {
      const cmd = restoreCommand(live.backend, f);
      // The save that just ran is the same executable (Debian's xtables-*-multi): it runs.
      if (await sameProgram(cmd, saveCommand(live.backend, f))) continue;
      const r = await this.deps
        .exec(cmd, ['--version'], { timeoutMs: 10_000 })
        .catch((e: unknown) => ({ code: -1, stdout: '', stderr: (e as Error).message }));
      if (r.code !== 0) {
        throw new AgentError(
          'AGENT_E_MISSING_TOOL',
          `${cmd} does not run (${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}); install iptables`,
          { details: { cmd, code: r.code } },
        );
      }
    }
    return {
      summary: `${plan.ruleCount} rules, ${live.backend} backend (${live.reason})`,
      notes: [...(resolved.warning ? [resolved.warning] : []), ...plan.warnings],
    };
  }

  async start(): Promise<void> {
    await this.counted('start', async () => {
      // ip6tables only when a rule of ours can be there (READY waits for this); the first check,
      // right after READY, reads it (see check).
      const { live, plan, resolved } = await prepare(this.io, this.cfg, this.cfg.backend, {
        skipUnusedIpv6: true,
      });
      if (resolved.warning) this.log.warn({ user: this.cfg.envoyUser }, resolved.warning);
      this.backend = live.backend;
      this.families = families(live);
      this.ids = resolved.ids;
      this.hadRulesBefore = families(live).some(
        (f) => transaction({ family: f, tables: [] }, live.tables.get(f) ?? []) !== undefined,
      );
      for (const w of plan.warnings) this.log.warn(w);
      this.touched = true;
      const r = await applyPlan(this.io, plan, live);
      this.plan = plan;
      this.applied = true;
      this.problem = undefined;
      this.log.info(
        {
          backend: live.backend,
          backendReason: live.reason,
          families: this.families,
          rules: plan.ruleCount,
          changed: r.changed,
          uid: resolved.ids.uid,
          gid: resolved.ids.gid,
        },
        `capture on (${plan.ruleCount} rules, ${live.backend} backend)`,
      );
      return true;
    });
    this.arm();
    // ip6tables not read: check as soon as the agent is READY (the sidecar may still be
    // starting after this), not at the first interval.
    if (!this.families.includes(6)) this.deps.events.once('agent-ready', this.checkNow);
  }

  private readonly checkNow = (): void => {
    void this.serial(() => this.check());
  };

  /** `work` under the queue and the lock, counted in the metrics as an apply or a failure. */
  private async counted(
    operation: 'start' | 'reload',
    work: () => Promise<boolean>,
  ): Promise<void> {
    let applied: boolean;
    try {
      applied = await this.serial(work);
    } catch (e) {
      this.metrics.inc('capture_failures_total', { operation });
      throw e;
    }
    if (applied) this.metrics.inc('capture_applies_total', { operation });
  }

  private arm(): void {
    this.timer?.cancel();
    if (this.stopped) return;
    this.timer = this.deps.clock.setTimeout(() => {
      void this.serial(() => this.check()).finally(() => {
        this.arm();
      });
    }, this.cfg.checkIntervalMs);
  }

  /**
   * The drift check: live versus plan; repairs what differs. Never throws. A family read here
   * that the plan was not made for (ip6tables, which start reads only when a rule of ours can be
   * there) is planned for now: capture rules of ours an earlier configuration left there without
   * a record (a lost state directory) are then drift, and removed.
   */
  private async check(): Promise<void> {
    if (this.stopped || !this.plan || !this.backend || !this.ids) return;
    try {
      const live = await readLiveWith(this.io, this.backend, 'in use');
      const all = families(live);
      const widened = !all.every((f) => this.families.includes(f));
      if (widened) {
        this.plan = planCapture(this.cfg, this.ids, all);
        this.families = all;
      }
      const plan = this.plan;
      const drift = await diffLive(this.io, plan, live);
      this.lastCheck = this.deps.clock.now();
      if (drift.length === 0) {
        if (this.problem !== undefined) {
          this.problem = undefined;
          this.deps.changed();
        }
        return;
      }
      this.log.warn(
        { drift: drift.map(driftLine), families: all },
        widened
          ? 'capture rules an earlier configuration left in ip6tables (its state record was gone); removing'
          : 'capture rules drifted from the plan (changed by someone else); repairing',
      );
      await applyPlan(this.io, plan, live);
      this.repairs++;
      this.metrics.inc('capture_drift_repairs_total');
      this.metrics.inc('capture_applies_total', { operation: 'repair' });
      this.problem = undefined;
      this.deps.changed();
    } catch (e) {
      const err = toAgentError(e);
      this.metrics.inc('capture_failures_total', { operation: 'check' });
      this.problem = `drift check failed: ${err.message}`;
      this.log.warn(
        { code: err.code, err: err.message },
        `capture check failed; will retry in ${this.cfg.checkIntervalMs} ms`,
      );
      this.deps.changed();
    }
  }

  async reload(config: AgentConfig): Promise<void> {
    await this.counted('reload', async () => {
      const next = config.capture;
      const intervalChanged = next.checkIntervalMs !== this.cfg.checkIntervalMs;
      this.cfg = next;
      this.stateDir = config.core.stateDir;
      if (!next.enabled) {
        // Capture switched off: remove our rules, as stop would.
        if (this.applied && this.backend)
          await cleanCapture(this.io, await readLiveWith(this.io, this.backend, 'in use'));
        this.applied = false;
        this.touched = false;
        this.disabled = true;
        this.plan = undefined;
        this.problem = undefined;
        this.log.info('capture off (ISTIO_CAPTURE=false); rules removed');
        this.deps.changed();
        return false;
      }
      const resolved = await resolveProxyIds(next, this.deps.exec);
      this.ids = resolved.ids;
      const plan = planCapture(next, resolved.ids, this.families);
      const same = this.applied && this.plan !== undefined && samePlan(plan, this.plan);
      if (same) {
        this.log.debug('capture plan unchanged by reload');
      } else {
        for (const w of plan.warnings) this.log.warn(w);
        const live = this.backend
          ? await readLiveWith(this.io, this.backend, 'in use')
          : await readLive(this.io, next.backend);
        this.backend = live.backend;
        const r = await applyPlan(this.io, plan, live);
        this.plan = plan;
        this.applied = true;
        this.disabled = false;
        this.problem = undefined;
        this.log.info(
          { rules: plan.ruleCount, changed: r.changed },
          `capture plan changed; applied (${plan.ruleCount} rules)`,
        );
        this.deps.changed();
      }
      if (intervalChanged) this.arm();
      return !same;
    });
  }

  async stop(): Promise<void> {
    await this.shutdown(this.cfg.keepOnStop);
  }

  /**
   * After a failed start: removes the rules, also with ISTIO_CAPTURE_KEEP_ON_STOP=true unless
   * they were already there before this start (then the host is as it was).
   */
  async rollback(): Promise<void> {
    await this.shutdown(this.cfg.keepOnStop && this.hadRulesBefore);
  }

  private async shutdown(keep: boolean): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.deps.events.off('agent-ready', this.checkNow);
    await this.serial(async () => {
      // `touched`: a start that failed part-way may have left some of the rules.
      if (!(this.applied || this.touched) || !this.backend) return;
      if (keep) {
        this.log.info(
          'keeping the capture rules on stop (ISTIO_CAPTURE_KEEP_ON_STOP=true): traffic stays pointed at the proxy',
        );
        return;
      }
      try {
        const r = await cleanCapture(this.io, await readLiveWith(this.io, this.backend, 'in use'));
        this.applied = false;
        this.touched = false;
        this.log.info(
          { changed: r.changed, tablesRemoved: r.tablesRemoved, routingRemoved: r.routingRemoved },
          'capture rules removed',
        );
      } catch (e) {
        const err = toAgentError(e);
        this.metrics.inc('capture_failures_total', { operation: 'clean' });
        this.problem = `clean failed: ${err.message}`;
        this.log.error(
          { code: err.code, err: err.message },
          `could not remove the capture rules; run \`istio-node-agent iptables clean\`: ${err.message}`,
        );
      }
    });
  }

  status(): ComponentStatus {
    const details = {
      backend: this.backend,
      families: this.families,
      rules: this.plan?.ruleCount ?? 0,
      repairs: this.repairs,
      lastCheck: this.lastCheck === undefined ? undefined : new Date(this.lastCheck).toISOString(),
    };
    const on = this.applied && this.plan !== undefined;
    return {
      ready: (on || this.disabled) && this.problem === undefined,
      summary: on ? `capture on (${this.plan!.ruleCount} rules)` : 'capture off',
      ...(this.problem !== undefined ? { problem: this.problem } : {}),
      details,
    };
  }
}
