/**
 * Restart and hot-restart decisions, as pure functions of the supervisor's state, the clock's
 * reading and an injected random source.
 */
import { backoffDelay, type BackoffPolicy, type Random } from '../lib/backoff';

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
