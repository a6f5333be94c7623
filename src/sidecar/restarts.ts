/**
 * The crash-restart schedule: counts crashes, waits out the backoff that policy.ts decides
 * before the next start, and starts the backoff afresh once a process has run for a healthy
 * stretch. It owns the restart and healthy-stretch timers; the supervisor is told when a restart
 * is due and decides what starting means.
 */
import type { BackoffPolicy, Random } from '../lib/backoff';
import type { Clock, TimerHandle } from '../lib/clock';
import type { AgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import type { ExitInfo } from './launcher';
import { describeExit, formatMs, onCrash, ordinal, type CrashState } from './policy';

export interface RestartsDeps {
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  readonly policy: BackoffPolicy;
  readonly healthyResetMs: number;
  /** What runs, for the healthy-stretch record. */
  readonly label: () => string;
  /** The backoff is over: start again. */
  readonly due: () => void;
  readonly changed: () => void;
}

export class Restarts {
  private state: CrashState = { streak: 0, restarts: 0 };
  private timer: TimerHandle | undefined;
  private at: number | undefined;
  private healthyTimer: TimerHandle | undefined;
  private last: string | undefined;
  private loop: string | undefined;
  private failed: string | undefined;

  constructor(private readonly d: RestartsDeps) {}

  /** Restarts since the agent started. */
  get count(): number {
    return this.state.restarts;
  }

  /** Crashes in a row without a healthy stretch in between. */
  get streak(): number {
    return this.state.streak;
  }

  /** A restart is waiting out its backoff. */
  get pending(): boolean {
    return this.timer !== undefined;
  }

  /** When the pending restart starts (clock milliseconds). */
  get nextStartAt(): number | undefined {
    return this.at;
  }

  /** "exit code 1 after 0.3s", for the status. */
  get lastExit(): string | undefined {
    return this.last;
  }

  /** Crash-looping: exits in a row past the policy's threshold, until a healthy stretch. */
  get crashLoop(): boolean {
    return this.loop !== undefined;
  }

  /** What is wrong, most important first: a crash loop (until a healthy stretch), a failed start. */
  get problems(): readonly (string | undefined)[] {
    return [this.loop, this.failed];
  }

  /** A process started; once it has run `healthyResetMs` and `alive()` still holds, it is healthy. */
  started(alive: () => boolean): void {
    this.failed = undefined;
    this.healthyTimer?.cancel();
    this.healthyTimer = this.d.clock.setTimeout(() => {
      if (alive()) this.healthy();
    }, this.d.healthyResetMs);
  }

  /** The current process crashed after running `ranForMs`: log it, and schedule the restart. */
  crashed(what: string, fields: Record<string, unknown>, info: ExitInfo, ranForMs: number): void {
    this.healthyTimer?.cancel();
    this.healthyTimer = undefined;
    const d = this.decide(ranForMs);
    this.state = { streak: d.streak, restarts: d.restarts };
    this.last = `${describeExit(info)} after ${formatMs(ranForMs)}`;
    this.d.log.warn(
      {
        ...fields,
        ranForMs,
        restartInMs: d.delayMs,
        consecutive: d.streak,
        restarts: d.restarts,
      },
      `${what} ${this.last}; restarting in ${formatMs(d.delayMs)} (${ordinal(d.streak)} consecutive)`,
    );
    if (d.crashLoop) {
      this.loop = `crash loop: ${d.streak} exits in a row (last: ${this.last}); restarting with backoff`;
      this.d.log.error(
        { code: 'AGENT_E_SIDECAR_CRASHLOOP', consecutive: d.streak, restartInMs: d.delayMs },
        `${what} is crash-looping (${d.streak} exits in a row); still restarting it with backoff; see its output above [AGENT_E_SIDECAR_CRASHLOOP]`,
      );
    }
    this.schedule(d.delayMs);
  }

  /** A start failed: try again after the backoff (the streak grows; it is not a restart). */
  launchFailed(err: AgentError): void {
    this.failed = err.message;
    const d = this.decide(0);
    this.state = { ...this.state, streak: d.streak };
    this.d.log.error(
      { code: err.code, err: err.message, retryInMs: d.delayMs },
      `${err.message}; retrying in ${formatMs(d.delayMs)}`,
    );
    this.schedule(d.delayMs);
  }

  /** Drops the pending restart (something starts now instead), and its time in the status. */
  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.at = undefined;
  }

  /** Stops both timers (the sidecar stops). */
  stop(): void {
    this.cancel();
    this.healthyTimer?.cancel();
  }

  private decide(ranForMs: number): ReturnType<typeof onCrash> {
    const { random, policy, healthyResetMs } = this.d;
    return onCrash(this.state, ranForMs, random, policy, healthyResetMs);
  }

  private schedule(delayMs: number): void {
    this.timer?.cancel();
    this.at = this.d.clock.now() + delayMs;
    this.timer = this.d.clock.setTimeout(() => {
      this.timer = undefined;
      this.at = undefined;
      this.d.due();
    }, delayMs);
  }

  private healthy(): void {
    this.healthyTimer = undefined;
    if (this.state.streak > 0 || this.loop) {
      this.d.log.info(
        { consecutive: this.state.streak },
        `${this.d.label()} has been running for ${formatMs(this.d.healthyResetMs)}; crash backoff reset`,
      );
    }
    this.state = { ...this.state, streak: 0 };
    if (this.loop) {
      this.loop = undefined;
      this.d.changed();
    }
  }
}
