// size: one state machine (start in dependency order with rollback, reload, stop, the status it publishes); split, its transitions would be spread over files.
import type { Component, ComponentStatus } from './component';
import type { AgentConfig } from './config/types';
import type { Clock, TimerHandle } from './lib/clock';
import { isoTime } from './lib/duration';
import { toAgentError, type AgentError } from './lib/errors';
import { writeStatusFile, type Logger } from './observe/index';
import { judge } from './readiness';
import { startPrerequisites } from './start-order';
import type { Notifier } from './systemd/index';

/**
 * Where the agent is: `ready` once started with every component ready, `degraded` once started
 * with something not ready (READY=1 was still sent: e.g. envoy not LIVE within
 * ISTIO_PROXY_READY_TIMEOUT, a crash-looping sidecar, a certificate past its not-after, a
 * refused reload).
 */
export type AgentState =
  'starting' | 'ready' | 'degraded' | 'reloading' | 'stopping' | 'stopped' | 'failed';

/** The status `status --json`, /debug/status and `status.json` show. */
export interface AgentStatus {
  readonly state: AgentState;
  /** Every component ready and no refused reload (readiness.ts). */
  readonly ready: boolean;
  /** What is not ready, by component (or `reload`), and why. */
  readonly notReady: Readonly<Record<string, string>>;
  readonly pid: number;
  readonly since: string;
  /** When this status was made. */
  readonly at: string;
  readonly summary: string;
  readonly components: Record<string, ComponentStatus>;
  /** The last SIGHUP: when, and why it was refused (the running configuration stayed). */
  readonly reload?: { readonly at: string; readonly refused?: string };
  /** Facts about the daemon the runner adds: version, state directory, monitoring address. */
  readonly daemon?: Readonly<Record<string, unknown>>;
}

export interface AgentOptions {
  readonly log: Logger;
  readonly clock: Clock;
  readonly notifier: Notifier;
  /** Where `status` finds the daemon's last status (JSON); undefined = not written. */
  readonly statusFile: string | undefined;
  /** What the status's `daemon` field says (read at each status). */
  readonly info?: () => Readonly<Record<string, unknown>>;
}

/**
 * The orchestrator: starts components in order, tells systemd READY=1 once every one is ready,
 * keeps STATUS= and the status file current, pets the watchdog, reloads on request, and stops
 * components in reverse order.
 */
export class Agent {
  /** The lifecycle; status() reports `ready` as `degraded` while something is not ready. */
  private state: Exclude<AgentState, 'degraded'> = 'starting';
  private lastReload: { at: number; refused?: string } | undefined;
  private readonly started: Component[] = [];
  private watchdogTimer: TimerHandle | undefined;
  private readonly since: string;
  private lastStatusLine = '';
  /** The components whose start() is under way. */
  private startingNow: Component[] = [];
  /** Settles once the start under way has (never rejects). */
  private inflight: Promise<void> | undefined;
  /** The stop or rollback of the started components, once begun. */
  private teardown: Promise<void> | undefined;
  private statusWrite: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private failure: AgentError | undefined;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private config: AgentConfig,
    private readonly components: readonly Component[],
    private readonly opts: AgentOptions,
  ) {
    this.since = new Date(opts.clock.now()).toISOString();
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /**
   * Runs every component's preflight (side by side), then starts each component as soon as
   * those it depends on have started (start-order.ts). Rejects with the first
   * preflight error before anything changed on the host, or, when a start fails, after undoing
   * (rollback) what every component started so far did, the failing one included.
   */
  async start(): Promise<void> {
    const { log, notifier } = this.opts;
    const signal = this.abort.signal;
    this.startWatchdog();
    await notifier.status('starting');
    // The preflights change nothing and do not depend on each other: they run side by side (the
    // programs and files they wait on overlap), and are reported in the components' order.
    const clock = this.opts.clock;
    const t0 = clock.monotonicUs();
    const outcomes = await Promise.allSettled(
      this.components.map(async (c) => {
        if (!c.preflight) return;
        await c.preflight(signal);
        // Where the start's time goes (debug): the slowest preflight holds up every start.
        const ms = Number(clock.monotonicUs() - t0) / 1000;
        log.debug({ component: 'agent', preflight: c.name, ms }, `${c.name} checked`);
      }),
    );
    if (signal.aborted) return;
    const failures: AgentError[] = [];
    this.components.forEach((c, i) => {
      const outcome = outcomes[i]!;
      if (outcome.status === 'fulfilled') return;
      const err = toAgentError(outcome.reason);
      log.error(
        { component: 'agent', code: err.code, failed: c.name, err: err.message },
        `${c.name}: ${err.toLine()}`,
      );
      failures.push(err);
    });
    if (failures.length > 0) {
      // Nothing was changed: every check runs before the first start.
      this.watchdogTimer?.cancel();
      this.state = 'failed';
      throw failures[0]!;
    }
    const failed = await this.startAll(signal);
    if (signal.aborted) return;
    if (failed) {
      this.watchdogTimer?.cancel();
      const [c, err] = failed;
      log.error(
        { component: 'agent', code: err.code, failed: c.name, err: err.message },
        `${c.name} failed to start: ${err.message}`,
      );
      this.state = 'failed';
      await this.undoStarted('rollback');
      throw err;
    }
    if (signal.aborted) return;
    this.state = 'ready';
    const summary = this.statusLine();
    this.lastStatusLine = summary;
    await notifier.ready(summary);
    if (this.status().ready) log.info({ component: 'agent', status: summary }, 'agent is ready');
    else
      log.warn(
        { component: 'agent', status: summary },
        'agent started, degraded: not every component is ready',
      );
    this.writeStatusFile();
  }

  /**
   * Starts every component as soon as the ones it waits for have started (start-order.ts), and
   * waits for all of them. Returns the first that failed, after the others were told to give up
   * (their signal aborted) and have settled; one whose prerequisites did not all start is not
   * started. A stop (`signal`) is not a failure.
   */
  private async startAll(signal: AbortSignal): Promise<[Component, AgentError] | undefined> {
    const { log, clock } = this.opts;
    const giveUp = new AbortController();
    const startSignal = AbortSignal.any([signal, giveUp.signal]);
    let failed: [Component, AgentError] | undefined;
    const prerequisites = startPrerequisites(this.components);
    /** Per component: whether it started. Prerequisites are earlier, so already in the map. */
    const outcomes = new Map<Component, Promise<boolean>>();
    const startOne = async (c: Component): Promise<boolean> => {
      const before = (prerequisites.get(c) ?? []).map((p) => outcomes.get(p)!);
      if (!(await Promise.all(before)).every(Boolean) || startSignal.aborted) return false;
      this.startingNow.push(c);
      log.debug({ component: 'agent', starting: c.name }, `starting ${c.name}`);
      const t0 = clock.monotonicUs();
      try {
        await c.start(startSignal);
        const ms = Number(clock.monotonicUs() - t0) / 1000;
        log.debug({ component: 'agent', started: c.name, ms }, `${c.name} started`);
      } catch (e) {
        if (!signal.aborted && !failed) {
          failed = [c, toAgentError(e)];
          giveUp.abort(new Error(`${c.name} failed to start`));
        }
        return false;
      } finally {
        // Started, or failed part-way: either way stop() or rollback() must undo it, and a
        // stop racing this start (SIGTERM) finds it here once the start has settled. Kept in
        // the registry's order: undone in reverse, STATUS in the same order every time.
        this.startingNow = this.startingNow.filter((x) => x !== c);
        this.started.push(c);
        this.started.sort((a, b) => this.components.indexOf(a) - this.components.indexOf(b));
      }
      if (!failed) this.refresh();
      return !startSignal.aborted;
    };
    for (const c of this.components) outcomes.set(c, startOne(c));
    this.inflight = Promise.all(outcomes.values()).then(() => undefined);
    try {
      await this.inflight;
    } finally {
      this.inflight = undefined;
    }
    return failed;
  }

  /** Re-reads configuration (the caller loads and validates it) and lets components apply changes. */
  async reload(next: AgentConfig): Promise<void> {
    const { log, notifier } = this.opts;
    if (this.state !== 'ready') return;
    this.state = 'reloading';
    await notifier.reloading(this.opts.clock.monotonicUs());
    this.config = next;
    if (log.level !== next.core.logLevel) {
      log.info(
        { component: 'agent', from: log.level, to: next.core.logLevel },
        `log level is now ${next.core.logLevel}`,
      );
      // Component loggers are pino children: they inherit the level from this one.
      log.level = next.core.logLevel;
    }
    for (const c of this.started) {
      if (!c.reload) continue;
      try {
        await c.reload(next);
      } catch (e) {
        // A component that cannot apply the new configuration keeps running on the old one;
        // the agent stays up (and keeps petting the watchdog).
        const err = toAgentError(e);
        log.error(
          { component: 'agent', code: err.code, failed: c.name, err: err.message },
          `reload of ${c.name} failed: ${err.message}`,
        );
      }
    }
    this.state = 'ready';
    this.lastReload = { at: this.opts.clock.now() };
    const summary = this.statusLine();
    this.lastStatusLine = summary;
    await notifier.ready(summary);
    log.info({ component: 'agent', status: summary }, 'configuration reloaded');
    this.writeStatusFile();
  }

  /**
   * A SIGHUP whose configuration was refused (the runner could not load it): the running
   * configuration stays, and status says so (not ready) until a reload succeeds.
   */
  reloadRefused(err: AgentError): void {
    this.lastReload = { at: this.opts.clock.now(), refused: err.toLine() };
    this.refresh();
  }

  /** Stops in reverse order. Safe to call more than once. */
  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return this.done;
    this.state = 'stopping';
    this.abort.abort(new Error('agent stopping'));
    await this.opts.notifier.stopping();
    this.opts.log.info({ component: 'agent' }, 'stopping');
    // A start under way is let finish (components give up early on the aborted signal), then
    // undone with the rest.
    await this.inflight;
    await this.undoStarted('stop');
    this.watchdogTimer?.cancel();
    this.state = this.failure ? 'failed' : 'stopped';
    this.writeStatusFile();
    await this.statusWrite;
    this.resolveDone();
  }

  /** Called by a component that cannot continue. The agent stops and `failed()` reports why. */
  fatal(e: Error): void {
    const err = toAgentError(e);
    if (this.failure) return;
    this.failure = err;
    this.opts.log.fatal({ component: 'agent', code: err.code, err: err.message }, err.message);
    void this.stop();
  }

  get failed(): AgentError | undefined {
    return this.failure;
  }

  /** Resolves once the agent has stopped (after stop() or a fatal error). */
  wait(): Promise<void> {
    return this.done;
  }

  /** A component's status changed. */
  refresh(): void {
    if (this.state === 'stopped') return;
    const line = this.statusLine();
    if (line !== this.lastStatusLine) {
      this.lastStatusLine = line;
      void this.opts.notifier.status(line);
    }
    this.writeStatusFile();
  }

  status(): AgentStatus {
    const components: Record<string, ComponentStatus> = {};
    for (const c of this.components) {
      if (c.inStatus === false) continue;
      // The one being started says why it is not ready yet (e.g. the CA is not answering).
      components[c.name] =
        this.started.includes(c) || this.startingNow.includes(c)
          ? c.status()
          : { ready: false, summary: `${c.name} not started` };
    }
    const now = this.opts.clock.now();
    const verdict = judge(components, this.lastReload?.refused, now);
    const running = this.state === 'ready' || this.state === 'reloading';
    const ready = verdict.ready && running;
    const notReady = running ? verdict.notReady : { agent: this.state, ...verdict.notReady };
    const reload = this.lastReload;
    return {
      state: this.state === 'ready' && !verdict.ready ? 'degraded' : this.state,
      ready,
      notReady,
      pid: process.pid,
      since: this.since,
      at: isoTime(now),
      summary: this.summary(),
      components,
      ...(reload
        ? {
            reload: {
              at: isoTime(reload.at),
              ...(reload.refused !== undefined ? { refused: reload.refused } : {}),
            },
          }
        : {}),
      ...(this.opts.info ? { daemon: this.opts.info() } : {}),
    };
  }

  /** STATUS=: the summary, `degraded: ` in front once started with something not ready. */
  statusLine(): string {
    const summary = this.summary();
    if (this.state !== 'ready') return summary;
    const components: Record<string, ComponentStatus> = {};
    for (const c of this.started) if (c.inStatus !== false) components[c.name] = c.status();
    const v = judge(components, this.lastReload?.refused, this.opts.clock.now());
    return v.ready ? summary : `degraded: ${summary}`;
  }

  /** The one-line summary for STATUS=: each component's phrase, problems first. */
  summary(): string {
    const parts: string[] = [];
    const problems: string[] = [];
    for (const c of this.started) {
      if (c.inStatus === false) continue;
      const s = c.status();
      parts.push(s.summary);
      if (s.problem) problems.push(`${c.name}: ${s.problem}`);
    }
    if (this.state === 'starting') {
      parts.unshift('starting');
      // What the component being started says is wrong, e.g. the CA is not answering yet: the
      // operator sees why the unit is still activating.
      for (const c of this.startingNow) {
        if (this.started.includes(c)) continue;
        let problem: string | undefined;
        try {
          problem = c.status().problem;
        } catch {
          problem = undefined;
        }
        if (problem) problems.push(`${c.name}: ${problem}`);
        else parts.push(`waiting for ${c.name}`);
      }
    }
    if (this.lastReload?.refused !== undefined)
      problems.push(`reload refused: ${this.lastReload.refused}`);
    const all = [...problems, ...parts];
    if (all.length === 0)
      return this.state === 'ready' ? 'ready; no components enabled' : this.state;
    return all.join('; ');
  }

  get currentConfig(): AgentConfig {
    return this.config;
  }

  /**
   * Stops (or, after a failed start, rolls back) the started components in reverse order, once:
   * a stop arriving during a rollback waits for it.
   */
  private undoStarted(how: 'stop' | 'rollback'): Promise<void> {
    this.teardown ??= (async () => {
      for (const c of [...this.started].reverse()) {
        try {
          await (how === 'rollback' && c.rollback ? c.rollback() : c.stop());
        } catch (e) {
          this.opts.log.error(
            { component: 'agent', failed: c.name, err: (e as Error).message },
            `${how === 'rollback' ? 'undoing' : 'stopping'} ${c.name} failed`,
          );
        }
      }
      this.started.length = 0;
    })();
    return this.teardown;
  }

  private startWatchdog(): void {
    const ms = this.opts.notifier.watchdogMs;
    if (ms === undefined) return;
    const every = Math.max(100, Math.floor(ms / 2));
    const tick = (): void => {
      void this.opts.notifier.watchdog();
      this.watchdogTimer = this.opts.clock.setTimeout(tick, every);
    };
    tick();
  }

  private writeStatusFile(): void {
    const file = this.opts.statusFile;
    if (file === undefined) return;
    const status = this.status();
    this.statusWrite = this.statusWrite
      .then(() => writeStatusFile(file, status))
      .catch((e: unknown) => {
        this.opts.log.warn(
          { component: 'agent', err: (e as Error).message },
          'could not write status file',
        );
      });
  }
}
