/**
 * The running processes: envoy epoch N started from its own bootstrap file (or pilot-agent),
 * the previous epoch draining under a kill deadline, drain-then-kill on stop, and the
 * housekeeping of bootstrap (rev) files. It starts and stops processes; when to is the
 * supervisor's decision.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from '../lib/atomic-write';
import type { Clock, TimerHandle } from '../lib/clock';
import { AgentError } from '../lib/errors';
import { ensureDir } from '../lib/safe-fs';
import type { Logger } from '../observe/index';
import { unreadableBy } from './access';
import type { AdminClient } from './admin';
import { bootstrapText, isRevFile, revFileName } from './bootstrap';
import type { ChildHandle, ExitInfo, Launcher } from './launcher';
import type { OutputForwarder } from './output';
import { launchSpec, type SidecarPlan } from './plan';
import { formatMs, nextEpoch } from './policy';

/** One process: an envoy epoch, or pilot-agent (epoch 0). */
export interface Running {
  readonly epoch: number;
  readonly handle: ChildHandle;
  readonly startedAt: number;
  role: 'current' | 'draining';
  ready: boolean;
  readonly configFile: string | undefined;
  exit: ExitInfo | undefined;
  drainKill: TimerHandle | undefined;
  /** We asked it to stop: its exit is not a crash. */
  stopRequested: boolean;
}

export interface EpochsDeps {
  readonly log: Logger;
  readonly clock: Clock;
  readonly launcher: Launcher;
  readonly output: OutputForwarder;
  /** After SIGTERM, how long before SIGKILL. */
  readonly stopTimeoutMs: number;
  /** A draining epoch still alive this long after its parent-shutdown time is killed. */
  readonly drainKillGraceMs: number;
  /** Aborted when the sidecar stops: a launch under way gives up. */
  readonly halt: AbortSignal;
  /** A process exited (its files and process group already cleaned up). */
  readonly onExit: (r: Running, info: ExitInfo) => void;
}

export class Epochs {
  private list: Running[] = [];
  private cur: Running | undefined;

  constructor(private readonly d: EpochsDeps) {}

  /** The process the sidecar is, once LIVE; undefined while none runs or a restart waits. */
  get current(): Running | undefined {
    return this.cur;
  }

  /** Every process still running, the current one and any draining epochs. */
  get running(): readonly Running[] {
    return this.list;
  }

  /** The current process is no longer the sidecar (it crashed, or is being replaced). */
  dropCurrent(): void {
    this.cur = undefined;
  }

  /** envoy's next `--restart-epoch`. */
  nextEpoch(): number {
    return nextEpoch(this.list.filter((r) => !r.exit).map((r) => r.epoch));
  }

  /** Something serves: the current process is LIVE, or during a hot restart the previous one. */
  serving(): boolean {
    if (this.cur?.ready) return true;
    return (
      this.cur !== undefined && this.list.some((r) => r.role === 'draining' && r.ready && !r.exit)
    );
  }

  /**
   * Starts one process: envoy epoch N (writing its bootstrap first) or pilot-agent. The one
   * before becomes a draining epoch, killed if it outlives its parent-shutdown time. Resolves
   * undefined when the sidecar stopped meanwhile.
   */
  async launch(plan: SidecarPlan, reason: string): Promise<Running | undefined> {
    if (this.d.halt.aborted) return undefined;
    const epoch = plan.mode === 'envoy' ? this.nextEpoch() : 0;
    let configFile: string | undefined;
    if (plan.mode === 'envoy') {
      configFile = path.join(plan.configDir, revFileName(epoch));
      await writeBootstrap(configFile, bootstrapText(plan.bootstrap!));
      const blocked = await unreadableBy(configFile, plan.user);
      if (blocked) {
        throw new AgentError(
          'AGENT_E_SIDECAR_BOOTSTRAP',
          `envoy runs as ${plan.user.name} and cannot read ${configFile}: ${blocked} is in the way; make ISTIO_PROXY_CONFIG_DIR and the directories above it searchable by EXEC_USER (root-owned, mode 0755)`,
          { details: { file: configFile, blocked } },
        );
      }
      if (this.d.halt.aborted) {
        await fs.rm(configFile, { force: true });
        return undefined;
      }
    }
    const spec = launchSpec(plan, epoch, configFile);
    const handle = this.d.launcher.launch(spec);
    const r: Running = {
      epoch,
      handle,
      startedAt: this.d.clock.now(),
      role: 'current',
      ready: false,
      configFile,
      exit: undefined,
      drainKill: undefined,
      stopRequested: false,
    };
    const prev = this.cur;
    if (prev) {
      prev.role = 'draining';
      const limit = plan.parentShutdownSeconds * 1000 + this.d.drainKillGraceMs;
      prev.drainKill = this.d.clock.setTimeout(() => {
        if (prev.exit) return;
        this.d.log.warn(
          { epoch: prev.epoch, pid: prev.handle.pid },
          `envoy epoch ${prev.epoch} did not exit after its parent-shutdown time; killing it`,
        );
        prev.handle.kill();
      }, limit);
    }
    this.cur = r;
    this.list.push(r);
    const tags = { proxy: plan.mode, ...(plan.mode === 'envoy' ? { epoch } : {}), pid: handle.pid };
    this.d.output.attach(handle.stdout, { ...tags, stream: 'stdout' });
    this.d.output.attach(handle.stderr, { ...tags, stream: 'stderr' });
    void handle.exited.then((info) => {
      this.exited(r, info);
    });
    const what = plan.mode === 'envoy' ? `envoy epoch ${epoch}` : 'pilot-agent';
    this.d.log.info(
      { ...tags, reason, argv: [spec.file, ...spec.args] },
      `started ${what} (pid ${handle.pid ?? '?'}): ${reason}`,
    );
    return r;
  }

  private exited(r: Running, info: ExitInfo): void {
    r.exit = info;
    r.drainKill?.cancel();
    this.list = this.list.filter((x) => x !== r);
    r.handle.kill(); // anything left in its process group
    if (r.configFile) void fs.rm(r.configFile, { force: true }).catch(() => undefined);
    this.d.onExit(r, info);
  }

  /** SIGKILL to every process (after a crash: a new envoy epoch 0 needs the old ones gone). */
  killAll(): void {
    for (const r of this.list) r.handle.kill();
  }

  /** Resolves once every process that runs now has exited. */
  async allExited(): Promise<void> {
    await Promise.all(this.list.map((r) => r.handle.exited));
  }

  cancelDrainKills(): void {
    for (const r of this.list) r.drainKill?.cancel();
  }

  /** Drain (when asked and LIVE), SIGTERM, SIGKILL after the timeout; resolves once all exited. */
  async stopAll(plan: SidecarPlan, drain: boolean, admin: AdminClient | undefined): Promise<void> {
    const live = this.list.filter((r) => !r.exit);
    if (live.length === 0) return;
    if (drain && admin && live.some((r) => r.ready)) {
      const st = await admin.post('/healthcheck/fail');
      if (st !== undefined && plan.drainSeconds > 0) {
        await admin.post('/drain_listeners?graceful');
        this.d.log.info(
          { drainSeconds: plan.drainSeconds },
          `draining envoy for ${plan.drainSeconds}s before stopping`,
        );
        await this.d.clock.sleep(plan.drainSeconds * 1000);
      }
    }
    for (const r of live) {
      r.stopRequested = true;
      r.handle.terminate();
    }
    const all = Promise.all(live.map((r) => r.handle.exited));
    if (!(await this.within(all, this.d.stopTimeoutMs))) {
      const left = live.filter((r) => !r.exit);
      this.d.log.warn(
        { pids: left.map((r) => r.handle.pid) },
        `sidecar did not exit within ${formatMs(this.d.stopTimeoutMs)} of SIGTERM; sending SIGKILL`,
      );
      for (const r of left) r.handle.kill();
      if (!(await this.within(all, this.d.stopTimeoutMs))) {
        this.d.log.error(
          { pids: left.filter((r) => !r.exit).map((r) => r.handle.pid) },
          'sidecar process did not exit after SIGKILL',
        );
      }
    }
  }

  private async within(p: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: TimerHandle | undefined;
    const t = new Promise<boolean>((resolve) => {
      timer = this.d.clock.setTimeout(() => {
        resolve(false);
      }, ms);
    });
    const r = await Promise.race([p.then(() => true), t]);
    timer?.cancel();
    return r;
  }

  /** Removes envoy-rev*.json (and temp files), left by an earlier run or at stop. */
  async removeRevFiles(dir: string, report = true): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return;
    }
    const stale = names.filter(isRevFile);
    await Promise.all(
      stale.map((n) => fs.rm(path.join(dir, n), { force: true }).catch(() => undefined)),
    );
    if (stale.length && report) {
      this.d.log.info({ dir, files: stale }, `removed ${stale.length} stale bootstrap file(s)`);
    }
  }

  /** envoy reads the TLS files once at start: say so when they are not there yet. */
  async checkCertFiles(plan: SidecarPlan): Promise<void> {
    const tls = plan.bootstrap?.tls;
    if (!tls) return;
    const missing: string[] = [];
    for (const f of [tls.certChain, tls.privateKey, tls.rootCert]) {
      if (
        !(await fs.stat(f).then(
          (st) => st.isFile(),
          () => false,
        ))
      )
        missing.push(f);
    }
    for (const f of [tls.certChain, tls.privateKey, tls.rootCert]) {
      const blocked = missing.includes(f) ? undefined : await unreadableBy(f, plan.user);
      if (blocked) {
        this.d.log.warn(
          { file: f, blocked },
          `envoy runs as ${plan.user.name} and cannot read ${f} (${blocked}); it will fail to connect to Pilot`,
        );
      }
    }
    if (missing.length) {
      this.d.log.warn(
        { missing },
        `the certificate set for the connection to Pilot is incomplete (${missing.join(', ')}); envoy fails until it exists`,
      );
    }
  }
}

async function writeBootstrap(file: string, text: string): Promise<void> {
  try {
    // A directory of the agent's (root's, 0755), never one the sidecar's user can write.
    await ensureDir(path.dirname(file), 0o755);
    // No secrets inside (only file names): readable by EXEC_USER.
    await atomicWrite(file, text, { mode: 0o644 });
  } catch (e) {
    if (e instanceof AgentError && e.code === 'AGENT_E_UNSAFE_PATH') throw e;
    throw new AgentError(
      'AGENT_E_SIDECAR_BOOTSTRAP',
      `cannot write the envoy bootstrap ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}; check ISTIO_PROXY_CONFIG_DIR and its permissions`,
      { cause: e },
    );
  }
}
