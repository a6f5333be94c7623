/**
 * Exponential backoff with jitter and a cap, as a pure function of the attempt number and an
 * injected random source.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  /** Relative jitter: 0.2 spreads each delay uniformly over ±20 %. */
  readonly jitter: number;
}

export type Random = () => number;

/** Delay before retry number `attempt` (0 = first retry). Never above `maxMs`, never negative. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: Random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.maxMs, Math.max(0, base + spread)));
}

/** A stateful counter over a policy, with reset after a stretch of success. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: Random = Math.random,
  ) {}

  next(): number {
    return backoffDelay(this.policy, this.attempt++, this.random);
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
