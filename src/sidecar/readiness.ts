/**
 * Readiness: polls envoy's admin endpoint (fast until the current process is LIVE: from 10 ms
 * after it starts, doubling up to `pollMs`, see notLivePollMs; slowly once it is), turns probes
 * into LIVE / no longer LIVE transitions of that process, and wakes whoever waits for LIVE.
 * What a transition leads to is the supervisor's decision.
 */
import type { Clock } from '../lib/clock';
import type { Logger } from '../observe/index';
import type { AdminClient, Probe } from './admin';
import type { Running } from './epochs';
import type { ProxyMode } from './plan';
import { formatMs, notLivePollMs, probeSaysLive } from './policy';

export interface ReadinessDeps {
  readonly log: Logger;
  readonly clock: Clock;
  /** Admin polling while the current process is not LIVE (at most), and once it is. */
  readonly pollMs: number;
  readonly livePollMs: number;
  /** Aborted when the sidecar stops: polling ends. */
  readonly halt: AbortSignal;
  /** The process to probe, the client to probe it through, and what runs. */
  readonly current: () => Running | undefined;
  readonly admin: () => AdminClient | undefined;
  readonly mode: () => ProxyMode;
  /** Whether the sidecar counts as ready now (a waiter returns at once then). */
  readonly ready: () => boolean;
  /** The current process became LIVE (true) or stopped being LIVE (false). */
  readonly onChange: (live: boolean) => void;
  /** Something the status shows changed (the epoch of pilot-agent's envoy). */
  readonly changed: () => void;
}

export class Readiness {
  private nudge = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private waiters: ((live: boolean) => void)[] = [];
  private probe: Probe | undefined;
  private pilotEnvoyEpoch: number | undefined;
  private late: string | undefined;
  /** Probes in a row that found the current process not LIVE, since it started or exited. */
  private misses = 0;

  constructor(private readonly d: ReadinessDeps) {}

  /** The last answer of the admin endpoint. */
  get lastProbe(): Probe | undefined {
    return this.probe;
  }

  /** In pilot-agent mode: the epoch of the envoy pilot-agent runs, as its admin port says. */
  get envoyEpoch(): number | undefined {
    return this.pilotEnvoyEpoch;
  }

  /** Set when the sidecar was not LIVE in time at start, cleared once it is. */
  get problem(): string | undefined {
    return this.late;
  }

  start(): void {
    this.loop = this.pollLoop();
  }

  /** Start waited `timeoutMs` in vain: say so, and keep waiting. */
  notLiveAfter(timeoutMs: number, plan: { mode: ProxyMode; adminPort: number }): void {
    const { mode, adminPort } = plan;
    const state = this.probe?.state ?? 'UNREACHABLE';
    this.late = `${mode} not LIVE after ${formatMs(timeoutMs)} (admin 127.0.0.1:${adminPort}: ${state}); still waiting`;
    this.d.log.warn({ state, adminPort }, this.late);
    this.d.changed();
  }

  /** Resolves once polling has ended (after `halt`). */
  done(): Promise<void> {
    return this.loop;
  }

  /** Polls now: a process started or exited. */
  kick(): void {
    this.misses = 0;
    this.nudge.abort();
    this.nudge = new AbortController();
  }

  /** Resolves true once ready, false after `timeoutMs`, on `signal`, or when released. */
  waitReady(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.d.ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (v: boolean): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        signal.removeEventListener('abort', onAbort);
        this.waiters = this.waiters.filter((w) => w !== onReady);
        resolve(v);
      };
      const onAbort = (): void => {
        finish(false);
      };
      const onReady = (live: boolean): void => {
        finish(live);
      };
      const timer = this.d.clock.setTimeout(() => {
        finish(false);
      }, timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(onReady);
    });
  }

  /** Wakes every waiter with false (the sidecar stops). */
  release(): void {
    for (const w of this.waiters.splice(0)) w(false);
  }

  private async pollLoop(): Promise<void> {
    while (!this.d.halt.aborted) {
      const r = this.d.current();
      const admin = this.d.admin();
      if (r && !r.exit && admin) {
        const p = await admin.probe();
        if (this.d.halt.aborted) return;
        if (r === this.d.current() && !r.exit) this.observe(r, p);
      }
      const live = this.d.current()?.ready ?? false;
      const wait = live ? this.d.livePollMs : notLivePollMs(this.misses++, this.d.pollMs);
      if (live) this.misses = 0;
      try {
        await this.d.clock.sleep(wait, AbortSignal.any([this.d.halt, this.nudge.signal]));
      } catch {
        /* nudged or stopping */
      }
    }
  }

  private observe(r: Running, p: Probe): void {
    const mode = this.d.mode();
    this.probe = p;
    if (mode === 'pilot-agent' && p.epoch !== this.pilotEnvoyEpoch) {
      this.pilotEnvoyEpoch = p.epoch;
      this.d.changed();
    }
    const live = probeSaysLive(mode, p, r.epoch);
    if (live === r.ready) return;
    r.ready = live;
    const what = mode === 'envoy' ? `envoy epoch ${r.epoch}` : `pilot-agent's envoy`;
    if (live) {
      this.d.log.info(
        { epoch: mode === 'envoy' ? r.epoch : p.epoch, pid: r.handle.pid },
        `${what} is LIVE`,
      );
      this.late = undefined;
      for (const w of this.waiters.splice(0)) w(true);
    } else {
      this.d.log.warn(
        { state: p.state, pid: r.handle.pid },
        `${what} is no longer LIVE (${p.state})`,
      );
    }
    this.d.onChange(live);
  }
}
