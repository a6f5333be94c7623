/**
 * Restart and hot-restart decisions, as pure functions of the supervisor's state, the clock's
 * reading and an injected random source.
 */
import { backoffDelay, type BackoffPolicy, type Random } from '../lib/backoff';
import type { SidecarPlan } from './plan';

/**
 * pilot-agent 1.0 retried from 200 ms, doubling, and gave up after 10 tries (~102 s). We start
 * the same, add ±20 % jitter, cap the wait at 30 s (a sidecar that is down blackholes captured
 * traffic, so waiting minutes helps nobody) and never give up.
 */
export const RESTART_POLICY: BackoffPolicy = {
  initialMs: 200,
  maxMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
};

/** A child that ran this long counts as healthy: its next crash starts the backoff afresh. */
export const HEALTHY_RESET_MS = 60_000;

/** Consecutive crashes from which the status reports a crash loop. */
export const CRASH_LOOP_AFTER = 3;

export interface CrashState {
  /** Consecutive crashes without a healthy stretch in between. */
  readonly streak: number;
  /** Restarts since the agent started. */
  readonly restarts: number;
}

export interface CrashDecision extends CrashState {
  /** Wait this long, then start again. */
  readonly delayMs: number;
  readonly crashLoop: boolean;
}

/** What to do when the current sidecar process exits on its own after running `ranForMs`. */
export function onCrash(
  state: CrashState,
  ranForMs: number,
  random: Random,
  policy: BackoffPolicy = RESTART_POLICY,
  healthyResetMs: number = HEALTHY_RESET_MS,
): CrashDecision {
  const attempt = ranForMs >= healthyResetMs ? 0 : state.streak;
  return {
    delayMs: backoffDelay(policy, attempt, random),
    streak: attempt + 1,
    restarts: state.restarts + 1,
    crashLoop: attempt + 1 >= CRASH_LOOP_AFTER,
  };
}

/** envoy's next `--restart-epoch`: one above the newest running epoch, 0 when none runs. */
export function nextEpoch(running: readonly number[]): number {
  return running.length === 0 ? 0 : Math.max(...running) + 1;
}

export type RotationAction = 'ignore' | 'hot-restart' | 'defer' | 'restart-now';

export interface RotationState {
  readonly mode: 'envoy' | 'pilot-agent';
  readonly stopping: boolean;
  /** A crash restart is waiting out its backoff. */
  readonly restartPending: boolean;
  /** There is a current process. */
  readonly running: boolean;
  /** The current process has reported LIVE. */
  readonly currentReady: boolean;
}

/**
 * What a `certs-rotated` event does:
 * - pilot-agent watches the certificate directory itself (1.0), so nothing;
 * - envoy reads its TLS files only at start, so a new epoch (hot restart) picks the new set up;
 * - while the current epoch is still starting, the next waits until it is LIVE (envoy hot-restarts
 *   one generation at a time);
 * - while a crash restart waits out its backoff, start now: the new set may be the fix.
 */
export function onRotation(s: RotationState): RotationAction {
  if (s.mode === 'pilot-agent' || s.stopping) return 'ignore';
  if (s.restartPending) return 'restart-now';
  if (!s.running) return 'ignore';
  return s.currentReady ? 'hot-restart' : 'defer';
}

/** What the record of a `certs-rotated` event says, by the action taken; undefined: no record. */
export function rotationNote(
  action: RotationAction,
  mode: 'envoy' | 'pilot-agent',
  nextEpoch: number,
): string | undefined {
  switch (action) {
    case 'ignore':
      return mode === 'pilot-agent'
        ? 'certificates rotated; pilot-agent watches them itself and hot-restarts envoy'
        : undefined;
    case 'defer':
      return 'certificates rotated; the new envoy epoch starts once the current one is LIVE';
    case 'restart-now':
      return 'certificates rotated; starting envoy now instead of waiting out the backoff';
    case 'hot-restart':
      return `certificates rotated; hot-restarting envoy into epoch ${nextEpoch}`;
  }
}

/** What a process's exit means to the supervisor. */
export type ExitKind = 'stopped' | 'after-hot-restart' | 'crash';

/**
 * An exit we asked for (stop, restart) is `stopped`; a process that is no longer the current one
 * is an old epoch ending after a hot restart; the current process dying on its own is a crash,
 * whatever its exit code.
 */
export function classifyExit(s: {
  readonly stopping: boolean;
  readonly stopRequested: boolean;
  readonly current: boolean;
}): ExitKind {
  if (s.stopping || s.stopRequested) return 'stopped';
  return s.current ? 'crash' : 'after-hot-restart';
}

export type ReconfigureAction = 'none' | 'hot-restart' | 'restart';

/**
 * What a new plan (SIGHUP) does: nothing when it is the same in every field; a hot restart into a new envoy
 * epoch when envoy stays envoy on the same admin port and bootstrap directory (the new epoch
 * takes over from the old one); otherwise stop everything and start afresh.
 */
export function onReconfigure(old: SidecarPlan, next: SidecarPlan): ReconfigureAction {
  if (JSON.stringify(old) === JSON.stringify(next)) return 'none';
  const hot =
    old.mode === 'envoy' &&
    next.mode === 'envoy' &&
    old.adminPort === next.adminPort &&
    old.configDir === next.configDir;
  return hot ? 'hot-restart' : 'restart';
}

/**
 * Whether an admin probe says that process `epoch` is LIVE. After a hot restart the admin port
 * moves to the new epoch; until then the old one answers, which does not count for the new one.
 * pilot-agent numbers its envoy's epochs itself: any LIVE answer counts.
 */
export function probeSaysLive(
  mode: 'envoy' | 'pilot-agent',
  p: { readonly state: string; readonly epoch: number | undefined },
  epoch: number,
): boolean {
  return (
    p.state === 'LIVE' && (mode === 'pilot-agent' || p.epoch === undefined || p.epoch === epoch)
  );
}

/** The first admin probe after a process starts (or exits) waits this long at most. */
export const FIRST_POLL_MS = 10;

/**
 * How long to wait before the next admin probe while the current process is not LIVE, after
 * `misses` probes in a row that said "not LIVE" since it started: 10 ms, doubling up to `maxMs`.
 * An envoy is LIVE within tens of milliseconds to seconds of its start; a fixed `maxMs` would add
 * half of it, on average, to every start and restart (and READY), where a few early probes of a
 * local port cost next to nothing.
 */
export function notLivePollMs(misses: number, maxMs: number): number {
  return Math.min(maxMs, FIRST_POLL_MS * 2 ** Math.min(misses, 20));
}

/** "1st", "2nd", "3rd", "11th", "22nd". */
export function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

/** "exit code 1", "signal SIGSEGV", "spawn error: …". */
export function describeExit(e: {
  readonly code: number | null;
  readonly signal: string | null;
  readonly error?: Error | undefined;
}): string {
  if (e.error) return `could not be started: ${e.error.message}`;
  if (e.signal) return `killed by ${e.signal}`;
  return `exit code ${e.code ?? '?'}`;
}

/** "0.2s", "3s", "2m5s": durations as text live in lib/duration.ts. */
export { formatShortDuration as formatMs } from '../lib/duration';
