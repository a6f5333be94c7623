/**
 * The sidecar component: resolves what to run (pure decisions in plan.ts), runs it as EXEC_USER
 * tied to the agent's life, restarts it with backoff when it dies, hot-restarts envoy into a new
 * epoch when the certificate set rotates, tracks readiness through envoy's admin endpoint, and
 * drains before stopping.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Component, ComponentDeps, ComponentStatus } from '../component';
import type { AgentConfig } from '../config/types';
import { atomicWrite } from '../lib/atomic-write';
import { ensureDir } from '../lib/safe-fs';
import type { BackoffPolicy } from '../lib/backoff';
import type { TimerHandle } from '../lib/clock';
import { AgentError, toAgentError } from '../lib/errors';
import type { Logger } from '../observe/logger';
import { unreadableBy } from './access';
import type { AdminClient, Probe } from './admin';
import { bootstrapText, certFiles, isRevFile, revFileName, type BootstrapInput } from './bootstrap';
import type { HostFacts } from './host';
import { shortHostname } from './host';
import type { ChildHandle, ExitInfo, LaunchSpec, Launcher } from './launcher';
import { OutputForwarder } from './output';
import {
  adminPortFromAgentFlags,
  chooseMode,
  compatFlags,
  controlPlaneNamespace,
  envoyArgs,
  nodeMetadata,
  parseEnvoyVersion,
  pilotAgentArgs,
  childEnv,
  pilotSan,
  pilotXdsPort,
  serviceNode,
  splitHostPort,
  wrapCommand,
  type ChildUser,
  type ProxyMode,
  type WrapOptions,
} from './plan';
import {
  describeExit,
  formatMs,
  nextEpoch,
  onCrash,
  onRotation,
  HEALTHY_RESET_MS,
  RESTART_POLICY,
} from './policy';

/** Everything the supervisor touches outside itself; defaults in index.ts, stand-ins in tests. */
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

/** What to run, resolved once per (re)configuration. */
export interface SidecarPlan {
  readonly mode: ProxyMode;
  readonly binary: string;
  readonly user: ChildUser;
  readonly svcIp: string;
  readonly podName: string;
  readonly serviceNode: string;
  readonly adminPort: number;
  readonly env: Readonly<Record<string, string>>;
  readonly wrap: WrapOptions;
  readonly compat: readonly string[];
  readonly envoyVersion: string | undefined;
  readonly bootstrap: BootstrapInput | undefined;
  readonly configDir: string;
  readonly serviceCluster: string;
  readonly drainSeconds: number;
  readonly parentShutdownSeconds: number;
  readonly logLevel: string;
  readonly concurrency: number;
  /** pilot-agent's argv (pilot-agent mode). */
  readonly pilotAgentArgs: readonly string[];
}

/** Resolves the plan: checks binaries, user and tools; throws the documented AgentErrors. */
export async function resolvePlan(
  config: AgentConfig,
  rt: SidecarRuntime,
  log: Logger,
): Promise<SidecarPlan> {
  const sc = config.sidecar;
  const [hasPilotAgent, hasEnvoy] = await Promise.all([
    rt.isExecutable(path.join(sc.binBase, 'pilot-agent')),
    rt.isExecutable(path.join(sc.binBase, 'envoy')),
  ]);
  const mode = chooseMode(sc.mode, { pilotAgent: hasPilotAgent, envoy: hasEnvoy }, sc.binBase);
  if (mode === 'none')
    throw new AgentError('AGENT_E_INTERNAL', 'resolvePlan called with SIDECAR_MODE=none');
  const binary = path.join(sc.binBase, mode);
  await rt.checkTrusted(binary);

  let user: ChildUser;
  if (rt.isRoot) {
    user = await rt.lookupUser(sc.execUser);
    if (user.uid === 0) {
      throw new AgentError(
        'AGENT_E_CONFIG_VALUE',
        `EXEC_USER=${sc.execUser} is uid 0: the sidecar must not run as root; use istio-proxy (the package creates it)`,
      );
    }
  } else {
    user = rt.currentUser();
    if (user.name !== sc.execUser && String(user.uid) !== sc.execUser) {
      log.warn(
        { execUser: sc.execUser, runAs: user.name },
        `not running as root: the sidecar runs as ${user.name}, not EXEC_USER=${sc.execUser}`,
      );
    }
  }

  const setpriv = await rt.findTool('setpriv');
  if (!setpriv && rt.isRoot) {
    throw new AgentError(
      'AGENT_E_MISSING_TOOL',
      'setpriv (util-linux 2.33 or later, with --pdeathsig) is needed to run the sidecar as EXEC_USER; install util-linux',
    );
  }
  if (!setpriv)
    log.warn(
      'setpriv with --pdeathsig not found: the sidecar will not be killed if the agent is killed',
    );
  const unshare = rt.isRoot && mode === 'pilot-agent' ? await rt.findTool('unshare') : undefined;
  if (rt.isRoot && mode === 'pilot-agent' && !unshare) {
    // Under systemd (INVOCATION_ID is set for every unit's processes) the unit's cgroup is killed
    // when the agent dies, so envoy cannot outlive it: only worth a warning elsewhere.
    const underSystemd = Boolean(rt.processEnv.INVOCATION_ID);
    log[underSystemd ? 'debug' : 'warn'](
      'unshare (util-linux) is missing or may not make a PID namespace here: envoy started by pilot-agent is not tied to the agent by the kernel' +
        (underSystemd
          ? ' (the systemd unit reaps it)'
          : ' and may outlive an agent killed by SIGKILL'),
    );
  }

  const facts =
    sc.svcIp !== undefined && sc.podName !== undefined ? undefined : await rt.hostFacts();
  const svcIp = sc.svcIp ?? facts?.primaryIp;
  if (svcIp === undefined) {
    throw new AgentError(
      'AGENT_E_CONFIG_VALUE',
      'this host has no non-loopback address to use as the workload IP; set ISTIO_SVC_IP',
      {
        origin: { file: 'default', line: 0, variable: 'ISTIO_SVC_IP' },
      },
    );
  }
  const podName = sc.podName ?? shortHostname(facts?.hostname ?? 'localhost');
  const node = serviceNode(svcIp, podName, sc.namespace);

  const tproxy = config.capture.enabled && config.capture.mode === 'TPROXY';
  if (config.capture.enabled && config.capture.envoyUser !== sc.execUser) {
    log.warn(
      { envoyUser: config.capture.envoyUser, execUser: sc.execUser },
      `ENVOY_USER=${config.capture.envoyUser} (excluded from capture) differs from EXEC_USER=${sc.execUser} (the sidecar's user): the sidecar's own traffic would be captured and loop`,
    );
  }
  const wrap: WrapOptions = {
    setpriv,
    unshare,
    switchTo: rt.isRoot ? { uid: user.uid, gid: user.gid } : undefined,
    // TPROXY listeners need CAP_NET_ADMIN; 1.0 ran the sidecar as root for it instead.
    ambientCaps: tproxy && rt.isRoot && user.uid !== 0 ? ['net_admin'] : [],
    pidNamespace: mode === 'pilot-agent',
  };

  let compat: string[] = [];
  let version: string | undefined;
  let bootstrap: BootstrapInput | undefined;
  let adminPort = sc.adminPort;
  const env = childEnv(
    rt.processEnv,
    user,
    { ip: svcIp, podName, namespace: sc.namespace },
    sc.metadata,
  );
  if (mode === 'envoy') {
    version = (
      await rt.envoyVersion(binary, { ...wrap, pidNamespace: false, ambientCaps: [] })
    )?.trim();
    const v = version === undefined ? undefined : parseEnvoyVersion(version);
    if (!v)
      log.warn({ binary, version }, `cannot tell ${binary}'s version; assuming a current envoy`);
    compat = compatFlags(v);
    const pilot = splitHostPort(sc.pilotAddress);
    const ns = controlPlaneNamespace(pilot.host, sc.namespace, config.core.systemNamespace);
    bootstrap = {
      nodeId: node,
      cluster: sc.service,
      metadata: nodeMetadata(sc.metadata, tproxy),
      adminPort,
      pilotHost: pilot.host,
      pilotPort: pilotXdsPort(sc.controlPlaneAuth),
      tls:
        sc.controlPlaneAuth === 'MUTUAL_TLS'
          ? { ...certFiles(config.ca.certsDir), subjectAltNames: [pilotSan(ns)] }
          : undefined,
    };
  } else {
    // pilot-agent picks its own admin port (default 15000, or --proxyAdminPort in ISTIO_AGENT_FLAGS).
    adminPort = adminPortFromAgentFlags(sc.agentFlags, 15000);
    if (sc.controlPlaneAuth === 'MUTUAL_TLS' && path.resolve(config.ca.certsDir) !== '/etc/certs') {
      log.warn(
        { certsDir: config.ca.certsDir },
        `pilot-agent reads its certificates from /etc/certs, but CERTS_DIR=${config.ca.certsDir}`,
      );
    }
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
    bootstrap,
    configDir: sc.configDir,
    serviceCluster: sc.service,
    drainSeconds: sc.drainSeconds,
    parentShutdownSeconds: sc.parentShutdownSeconds,
    logLevel: sc.proxyLogLevel,
    concurrency: sc.concurrency,
    pilotAgentArgs: mode === 'pilot-agent' ? pilotAgentArgs(sc) : [],
  };
}

/** The command line for one process (one envoy epoch, or pilot-agent). Pure. */
export function launchSpec(
  plan: SidecarPlan,
  epoch: number,
  configFile: string | undefined,
): LaunchSpec {
  const args =
    plan.mode === 'envoy'
      ? envoyArgs({
          configFile: configFile ?? path.join(plan.configDir, revFileName(epoch)),
          epoch,
          drainSeconds: plan.drainSeconds,
          parentShutdownSeconds: plan.parentShutdownSeconds,
          serviceCluster: plan.serviceCluster,
          serviceNode: plan.serviceNode,
          logLevel: plan.logLevel,
          concurrency: plan.concurrency,
          compat: plan.compat,
        })
      : [...plan.pilotAgentArgs];
  const w = wrapCommand(plan.binary, args, plan.wrap);
  return { file: w.file, args: w.args, env: plan.env, innerSignal: w.innerSignal };
}

interface Running {
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

export class SidecarSupervisor implements Component {
  readonly name = 'sidecar';
  private plan: SidecarPlan | undefined;
  /** The plan resolved by preflight, used by the start that follows. */
  private preflighted: SidecarPlan | undefined;
  private readonly log: Logger;
  private readonly output: OutputForwarder;
  private running: Running[] = [];
  private current: Running | undefined;
  private streak = 0;
  private restarts = 0;
  private restartTimer: TimerHandle | undefined;
  private restartAt: number | undefined;
  private healthyTimer: TimerHandle | undefined;
  private pendingRotation = false;
  private stopping = false;
  private stopPromise: Promise<void> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly pollStop = new AbortController();
  private nudge = new AbortController();
  private pollDone: Promise<void> = Promise.resolve();
  private readyWaiters: ((live: boolean) => void)[] = [];
  private lastProbe: Probe | undefined;
  private envoyEpoch: number | undefined;
  private lastExit: string | undefined;
  private crashProblem: string | undefined;
  private readinessProblem: string | undefined;
  private launchProblem: string | undefined;
  private admin: AdminClient | undefined;

  constructor(
    private config: AgentConfig,
    private readonly deps: ComponentDeps,
    private readonly rt: SidecarRuntime,
  ) {
    this.log = deps.log.child({ component: 'sidecar' });
    this.output = new OutputForwarder(this.log, deps.clock, config.sidecar.logLinesPerMinute);
  }

  /** Resolves the plan (binary, EXEC_USER, setpriv, addresses) before anything changes. */
  async preflight(): Promise<void> {
    this.preflighted = await resolvePlan(this.config, this.rt, this.log);
  }

  async start(signal: AbortSignal): Promise<void> {
    const plan = this.preflighted ?? (await resolvePlan(this.config, this.rt, this.log));
    this.preflighted = undefined;
    this.plan = plan;
    this.admin = this.rt.admin(plan.adminPort);
    this.log.info(
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
    try {
      if (plan.mode === 'envoy') {
        await this.removeRevFiles();
        await this.checkCertFiles(plan);
      }
      this.deps.events.on('certs-rotated', this.onRotated);
      this.pollDone = this.pollLoop();
      await this.serial(() => this.launch('start'));
      const live = await this.waitReady(this.config.sidecar.readyTimeoutMs, signal);
      if (signal.aborted) {
        await this.stop();
        return;
      }
      if (!live) {
        const state = this.lastProbe?.state ?? 'UNREACHABLE';
        this.readinessProblem = `${plan.mode} not LIVE after ${formatMs(this.config.sidecar.readyTimeoutMs)} (admin 127.0.0.1:${plan.adminPort}: ${state}); still waiting`;
        this.log.warn({ state, adminPort: plan.adminPort }, this.readinessProblem);
        this.deps.changed();
      }
    } catch (e) {
      await this.stop();
      throw toAgentError(e);
    }
  }

  async reload(next: AgentConfig): Promise<void> {
    if (this.stopping || !this.plan) return;
    const plan = await resolvePlan(next, this.rt, this.log);
    this.config = next;
    if (JSON.stringify(plan) === JSON.stringify(this.plan)) return;
    const old = this.plan;
    this.plan = plan;
    const hot =
      old.mode === 'envoy' &&
      plan.mode === 'envoy' &&
      old.adminPort === plan.adminPort &&
      old.configDir === plan.configDir;
    this.log.info(
      { proxy: plan.mode },
      `sidecar configuration changed: ${hot ? 'hot restart' : 'restarting the sidecar'}`,
    );
    if (hot) {
      // No current process: the pending restart starts with the new plan anyway.
      if (!this.current) return;
      if (this.current.ready) await this.serial(() => this.hotRestart('configuration change'));
      else this.pendingRotation = true;
      return;
    }
    await this.serial(async () => {
      this.restartTimer?.cancel();
      this.restartTimer = undefined;
      this.current = undefined; // their exits are not crashes
      await this.stopChildren(old, true);
      this.admin = this.rt.admin(plan.adminPort);
      if (plan.mode === 'envoy') await this.removeRevFiles();
      await this.launchSafe('configuration change');
    });
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  status(): ComponentStatus {
    const plan = this.plan;
    if (!plan) return { ready: false, summary: 'sidecar not started' };
    const cur = this.current;
    const restarts = `${this.restarts} restart${this.restarts === 1 ? '' : 's'}`;
    let summary: string;
    if (plan.mode === 'envoy')
      summary = cur
        ? `sidecar envoy epoch ${cur.epoch}, ${restarts}`
        : `sidecar envoy down, ${restarts}`;
    else {
      const ep = this.envoyEpoch === undefined ? '' : ` (envoy epoch ${this.envoyEpoch})`;
      summary = cur
        ? `sidecar pilot-agent${ep}, ${restarts}`
        : `sidecar pilot-agent down, ${restarts}`;
    }
    const ready = this.isReady();
    if (cur && !ready) summary += ', not LIVE yet';
    const problem = this.crashProblem ?? this.launchProblem ?? this.readinessProblem;
    return {
      ready,
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
        epoch: plan.mode === 'envoy' ? cur?.epoch : this.envoyEpoch,
        epochs: this.running.map((r) => ({
          epoch: r.epoch,
          pid: r.handle.pid,
          role: r.role,
          ready: r.ready,
        })),
        state: this.lastProbe?.state,
        restarts: this.restarts,
        consecutiveCrashes: this.streak,
        lastExit: this.lastExit,
        nextStartAt:
          this.restartAt === undefined ? undefined : new Date(this.restartAt).toISOString(),
      },
    };
  }

  // ---- internals ----

  private isReady(): boolean {
    if (this.stopping) return false;
    if (this.current?.ready) return true;
    // During a hot restart the previous epoch serves until the new one is LIVE.
    return (
      this.current !== undefined &&
      this.running.some((r) => r.role === 'draining' && r.ready && !r.exit)
    );
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private readonly onRotated = (info: {
    readonly certsDir: string;
    readonly generation: string;
  }): void => {
    const plan = this.plan;
    if (!plan) return;
    const action = onRotation({
      mode: plan.mode,
      stopping: this.stopping,
      restartPending: this.restartTimer !== undefined,
      running: this.current !== undefined,
      currentReady: this.current?.ready ?? false,
    });
    const fields = { generation: info.generation, action };
    switch (action) {
      case 'ignore':
        if (plan.mode === 'pilot-agent') {
          this.log.info(
            fields,
            'certificates rotated; pilot-agent watches them itself and hot-restarts envoy',
          );
        }
        return;
      case 'defer':
        this.log.info(
          fields,
          'certificates rotated; the new envoy epoch starts once the current one is LIVE',
        );
        this.pendingRotation = true;
        return;
      case 'restart-now':
        this.log.info(
          fields,
          'certificates rotated; starting envoy now instead of waiting out the backoff',
        );
        this.restartTimer?.cancel();
        this.restartTimer = undefined;
        this.restartAt = undefined;
        void this.serial(() => this.restartNow('cert rotation'));
        return;
      case 'hot-restart':
        this.log.info(
          fields,
          `certificates rotated; hot-restarting envoy into epoch ${this.nextEpochNumber()}`,
        );
        void this.serial(() => this.hotRestart('cert rotation'));
        return;
    }
  };

  private nextEpochNumber(): number {
    return nextEpoch(this.running.filter((r) => !r.exit).map((r) => r.epoch));
  }

  /** Starts one process: envoy epoch N (writing its bootstrap first) or pilot-agent. */
  private async launch(reason: string): Promise<void> {
    const plan = this.plan!;
    if (this.stopping) return;
    const epoch = plan.mode === 'envoy' ? this.nextEpochNumber() : 0;
    let configFile: string | undefined;
    if (plan.mode === 'envoy') {
      configFile = path.join(plan.configDir, revFileName(epoch));
      await this.writeBootstrap(configFile, bootstrapText(plan.bootstrap!));
      const blocked = await unreadableBy(configFile, plan.user);
      if (blocked) {
        throw new AgentError(
          'AGENT_E_SIDECAR_BOOTSTRAP',
          `envoy runs as ${plan.user.name} and cannot read ${configFile}: ${blocked} is in the way; make ISTIO_PROXY_CONFIG_DIR and the directories above it searchable by EXEC_USER (root-owned, mode 0755)`,
          { details: { file: configFile, blocked } },
        );
      }
      if (this.stopping) {
        await fs.rm(configFile, { force: true });
        return;
      }
    }
    const spec = launchSpec(plan, epoch, configFile);
    const handle = this.rt.launcher.launch(spec);
    const r: Running = {
      epoch,
      handle,
      startedAt: this.deps.clock.now(),
      role: 'current',
      ready: false,
      configFile,
      exit: undefined,
      drainKill: undefined,
      stopRequested: false,
    };
    const prev = this.current;
    if (prev) {
      prev.role = 'draining';
      const limit = plan.parentShutdownSeconds * 1000 + this.rt.drainKillGraceMs;
      prev.drainKill = this.deps.clock.setTimeout(() => {
        if (prev.exit) return;
        this.log.warn(
          { epoch: prev.epoch, pid: prev.handle.pid },
          `envoy epoch ${prev.epoch} did not exit after its parent-shutdown time; killing it`,
        );
        prev.handle.kill();
      }, limit);
    }
    this.current = r;
    this.running.push(r);
    this.launchProblem = undefined;
    const tags = { proxy: plan.mode, ...(plan.mode === 'envoy' ? { epoch } : {}), pid: handle.pid };
    this.output.attach(handle.stdout, { ...tags, stream: 'stdout' });
    this.output.attach(handle.stderr, { ...tags, stream: 'stderr' });
    void handle.exited.then((info) => {
      this.onExit(r, info);
    });
    this.healthyTimer?.cancel();
    this.healthyTimer = this.deps.clock.setTimeout(() => {
      this.onHealthy(r);
    }, this.rt.healthyResetMs);
    const what = plan.mode === 'envoy' ? `envoy epoch ${epoch}` : 'pilot-agent';
    this.log.info(
      { ...tags, reason, argv: [spec.file, ...spec.args] },
      `started ${what} (pid ${handle.pid ?? '?'}): ${reason}`,
    );
    this.kick();
    this.deps.changed();
  }

  /**
   * Starts the next envoy epoch, re-checking under the queue what the decision assumed: a current
   * epoch that is LIVE. If it has died meanwhile, the crash restart (new plan, new files) covers
   * it; if it is not LIVE (yet), the next epoch waits for it.
   */
  private async hotRestart(reason: string): Promise<void> {
    const cur = this.current;
    if (this.stopping || !cur || cur.exit) return;
    if (!cur.ready) {
      this.pendingRotation = true;
      return;
    }
    await this.launchSafe(reason);
  }

  /** launch(), turning a failure into a retry with backoff (the current process, if any, goes on). */
  private async launchSafe(reason: string): Promise<void> {
    try {
      await this.launch(reason);
    } catch (e) {
      const err = toAgentError(e);
      this.launchProblem = err.message;
      const d = onCrash(
        { streak: this.streak, restarts: this.restarts },
        0,
        this.deps.random,
        this.rt.policy,
        this.rt.healthyResetMs,
      );
      this.streak = d.streak;
      this.log.error(
        { code: err.code, err: err.message, retryInMs: d.delayMs },
        `${err.message}; retrying in ${formatMs(d.delayMs)}`,
      );
      this.scheduleRestart(d.delayMs);
      this.deps.changed();
    }
  }

  private async restartNow(reason: string): Promise<void> {
    // Without a current process the old epochs were killed: envoy's epoch 0 needs them gone.
    if (!this.current) await Promise.all(this.running.map((r) => r.handle.exited));
    if (this.stopping) return;
    await this.launchSafe(reason);
  }

  private scheduleRestart(delayMs: number): void {
    this.restartTimer?.cancel();
    this.restartAt = this.deps.clock.now() + delayMs;
    this.restartTimer = this.deps.clock.setTimeout(() => {
      this.restartTimer = undefined;
      this.restartAt = undefined;
      void this.serial(() => this.restartNow('restart after exit'));
    }, delayMs);
  }

  private onExit(r: Running, info: ExitInfo): void {
    r.exit = info;
    r.drainKill?.cancel();
    this.running = this.running.filter((x) => x !== r);
    r.handle.kill(); // anything left in its process group
    if (r.configFile) void fs.rm(r.configFile, { force: true }).catch(() => undefined);
    const plan = this.plan!;
    const what = plan.mode === 'envoy' ? `envoy epoch ${r.epoch}` : 'pilot-agent';
    const fields = {
      proxy: plan.mode,
      epoch: r.epoch,
      pid: r.handle.pid,
      code: info.code,
      signal: info.signal,
    };
    if (this.stopping || r.stopRequested || r !== this.current) {
      if (r.stopRequested || this.stopping) {
        this.log.info(fields, `${what} stopped (${describeExit(info)})`);
      } else {
        const normal = info.code === 0;
        this.log[normal ? 'info' : 'warn'](
          fields,
          `${what} exited after the hot restart (${describeExit(info)})`,
        );
      }
      this.deps.changed();
      return;
    }
    // The current process died on its own: a crash, whatever its exit code.
    const ranFor = this.deps.clock.now() - r.startedAt;
    this.current = undefined;
    this.healthyTimer?.cancel();
    this.healthyTimer = undefined;
    const d = onCrash(
      { streak: this.streak, restarts: this.restarts },
      ranFor,
      this.deps.random,
      this.rt.policy,
      this.rt.healthyResetMs,
    );
    this.streak = d.streak;
    this.restarts = d.restarts;
    this.lastExit = `${describeExit(info)} after ${formatMs(ranFor)}`;
    for (const o of this.running) o.handle.kill(); // older epochs: a new epoch 0 needs them gone
    this.log.warn(
      {
        ...fields,
        ranForMs: ranFor,
        restartInMs: d.delayMs,
        consecutive: d.streak,
        restarts: d.restarts,
      },
      `${what} ${this.lastExit}; restarting in ${formatMs(d.delayMs)} (${ordinal(d.streak)} consecutive)`,
    );
    if (d.crashLoop) {
      this.crashProblem = `crash loop: ${d.streak} exits in a row (last: ${this.lastExit}); restarting with backoff`;
      this.log.error(
        { code: 'AGENT_E_SIDECAR_CRASHLOOP', consecutive: d.streak, restartInMs: d.delayMs },
        `${what} is crash-looping (${d.streak} exits in a row); still restarting it with backoff; see its output above [AGENT_E_SIDECAR_CRASHLOOP]`,
      );
    }
    this.scheduleRestart(d.delayMs);
    this.kick();
    this.deps.changed();
  }

  private onHealthy(r: Running): void {
    if (r !== this.current || r.exit) return;
    this.healthyTimer = undefined;
    if (this.streak > 0 || this.crashProblem) {
      this.log.info(
        { consecutive: this.streak },
        `${this.plan?.mode ?? 'sidecar'} has been running for ${formatMs(this.rt.healthyResetMs)}; crash backoff reset`,
      );
    }
    this.streak = 0;
    if (this.crashProblem) {
      this.crashProblem = undefined;
      this.deps.changed();
    }
  }

  private kick(): void {
    this.nudge.abort();
    this.nudge = new AbortController();
  }

  /** Polls the admin endpoint: fast until the current process is LIVE, slowly after. */
  private async pollLoop(): Promise<void> {
    while (!this.stopping) {
      const r = this.current;
      if (r && !r.exit && this.admin) {
        const p = await this.admin.probe();
        if (this.stopping) return;
        if (r === this.current && !r.exit) this.onProbe(r, p);
      }
      const wait = this.current?.ready ? this.rt.livePollMs : this.rt.pollMs;
      try {
        await this.deps.clock.sleep(
          wait,
          AbortSignal.any([this.pollStop.signal, this.nudge.signal]),
        );
      } catch {
        /* nudged or stopping */
      }
    }
  }

  private onProbe(r: Running, p: Probe): void {
    const plan = this.plan!;
    this.lastProbe = p;
    if (plan.mode === 'pilot-agent' && p.epoch !== this.envoyEpoch) {
      this.envoyEpoch = p.epoch;
      this.deps.changed();
    }
    // After a hot restart the admin port moves to the new epoch; until then the old one answers.
    const live =
      p.state === 'LIVE' &&
      (plan.mode === 'pilot-agent' || p.epoch === undefined || p.epoch === r.epoch);
    if (live === r.ready) return;
    r.ready = live;
    const what = plan.mode === 'envoy' ? `envoy epoch ${r.epoch}` : `pilot-agent's envoy`;
    if (live) {
      this.log.info(
        { epoch: plan.mode === 'envoy' ? r.epoch : p.epoch, pid: r.handle.pid },
        `${what} is LIVE`,
      );
      this.readinessProblem = undefined;
      for (const w of this.readyWaiters.splice(0)) w(true);
      if (this.pendingRotation) {
        this.pendingRotation = false;
        this.log.info(
          `hot-restarting envoy into epoch ${this.nextEpochNumber()} for the deferred rotation`,
        );
        void this.serial(() => this.hotRestart('cert rotation'));
      }
    } else {
      this.log.warn(
        { state: p.state, pid: r.handle.pid },
        `${what} is no longer LIVE (${p.state})`,
      );
    }
    this.deps.changed();
  }

  private waitReady(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.isReady()) return Promise.resolve(true);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (v: boolean): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        signal.removeEventListener('abort', onAbort);
        this.readyWaiters = this.readyWaiters.filter((w) => w !== onReady);
        resolve(v);
      };
      const onAbort = (): void => {
        finish(false);
      };
      const onReady = (live: boolean): void => {
        finish(live);
      };
      const timer = this.deps.clock.setTimeout(() => {
        finish(false);
      }, timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.readyWaiters.push(onReady);
    });
  }

  private async writeBootstrap(file: string, text: string): Promise<void> {
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

  /** envoy reads the TLS files once at start: say so when they are not there yet. */
  private async checkCertFiles(plan: SidecarPlan): Promise<void> {
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
        this.log.warn(
          { file: f, blocked },
          `envoy runs as ${plan.user.name} and cannot read ${f} (${blocked}); it will fail to connect to Pilot`,
        );
      }
    }
    if (missing.length) {
      this.log.warn(
        { missing },
        `the certificate set for the connection to Pilot is incomplete (${missing.join(', ')}); envoy fails until it exists`,
      );
    }
  }

  /** Removes envoy-rev*.json (and temp files), left by an earlier run or at stop. */
  private async removeRevFiles(report = true): Promise<void> {
    const dir = this.plan!.configDir;
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
      this.log.info({ dir, files: stale }, `removed ${stale.length} stale bootstrap file(s)`);
    }
  }

  /** Drain (when asked and LIVE), SIGTERM, SIGKILL after the timeout; resolves once all exited. */
  private async stopChildren(plan: SidecarPlan, drain: boolean): Promise<void> {
    const live = this.running.filter((r) => !r.exit);
    if (live.length === 0) return;
    if (drain && this.admin && live.some((r) => r.ready)) {
      const st = await this.admin.post('/healthcheck/fail');
      if (st !== undefined && plan.drainSeconds > 0) {
        await this.admin.post('/drain_listeners?graceful');
        this.log.info(
          { drainSeconds: plan.drainSeconds },
          `draining envoy for ${plan.drainSeconds}s before stopping`,
        );
        await this.deps.clock.sleep(plan.drainSeconds * 1000);
      }
    }
    for (const r of live) {
      r.stopRequested = true;
      r.handle.terminate();
    }
    const all = Promise.all(live.map((r) => r.handle.exited));
    if (!(await this.within(all, this.rt.stopTimeoutMs))) {
      const left = live.filter((r) => !r.exit);
      this.log.warn(
        { pids: left.map((r) => r.handle.pid) },
        `sidecar did not exit within ${formatMs(this.rt.stopTimeoutMs)} of SIGTERM; sending SIGKILL`,
      );
      for (const r of left) r.handle.kill();
      if (!(await this.within(all, this.rt.stopTimeoutMs))) {
        this.log.error(
          { pids: left.filter((r) => !r.exit).map((r) => r.handle.pid) },
          'sidecar process did not exit after SIGKILL',
        );
      }
    }
  }

  private async within(p: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: TimerHandle | undefined;
    const t = new Promise<boolean>((resolve) => {
      timer = this.deps.clock.setTimeout(() => {
        resolve(false);
      }, ms);
    });
    const r = await Promise.race([p.then(() => true), t]);
    timer?.cancel();
    return r;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.pollStop.abort();
    this.restartTimer?.cancel();
    this.restartTimer = undefined;
    this.restartAt = undefined;
    this.healthyTimer?.cancel();
    this.deps.events.off('certs-rotated', this.onRotated);
    for (const w of this.readyWaiters.splice(0)) w(false);
    const plan = this.plan;
    if (plan) {
      await this.stopChildren(plan, true);
      await this.queue;
      await this.pollDone;
      for (const r of this.running) r.drainKill?.cancel();
      if (plan.mode === 'envoy') await this.removeRevFiles(false);
      this.log.info({ restarts: this.restarts }, 'sidecar stopped');
    }
    this.output.close();
    this.current = undefined;
  }
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}
