/**
 * Whether the agent is ready, in one place: what STATUS= calls `degraded`, what /healthz/ready
 * answers 503 for, and what makes `status` exit 1. Pure, and computed for a given instant, so
 * `status` can judge a status written earlier at the time it is read (a certificate that has
 * expired since).
 */
import type { ComponentStatus } from './component';

export interface Verdict {
  /** Every component ready, and no refused reload. */
  readonly ready: boolean;
  /** What is not ready (a component's name, or `reload`) and why. */
  readonly notReady: Readonly<Record<string, string>>;
}

export function judge(
  components: Readonly<Record<string, ComponentStatus>>,
  reloadRefused: string | undefined,
  now: number,
): Verdict {
  const notReady: Record<string, string> = {};
  for (const [name, c] of Object.entries(components)) {
    const until = c.validUntil === undefined ? undefined : Date.parse(c.validUntil);
    if (!c.ready) notReady[name] = c.problem ?? c.summary;
    else if (until !== undefined && until <= now) notReady[name] = `expired at ${c.validUntil}`;
  }
  if (reloadRefused !== undefined) notReady.reload = reloadRefused;
  return { ready: Object.keys(notReady).length === 0, notReady };
}
