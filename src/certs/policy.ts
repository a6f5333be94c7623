import { backoffDelay, type BackoffPolicy, type Random } from '../lib/backoff';

/** Spread of the renewal point: ±10 % of the wait, so a fleet does not renew in lockstep. */
export const RENEW_JITTER = 0.1;

/**
 * When to renew a certificate valid from `notBefore` to `notAfter`: once `ratio` of its lifetime
 * has passed (Istio 1.0: 50 %), the wait jittered by ±RENEW_JITTER. Never after expiry.
 */
export function renewAt(
  notBefore: number,
  notAfter: number,
  ratio: number,
  random: Random,
): number {
  const lifetime = Math.max(0, notAfter - notBefore);
  const wait = lifetime * ratio * (1 + RENEW_JITTER * (2 * random() - 1));
  return Math.min(notAfter, notBefore + Math.round(wait));
}

/** Retries after a failed CSR: 5 s first (as 1.0), doubling, capped at 5 minutes, ±20 % jitter. */
export const RETRY_POLICY: BackoffPolicy = {
  initialMs: 5000,
  multiplier: 2,
  maxMs: 5 * 60_000,
  jitter: 0.2,
};

/** The shortest retry, however close expiry is. */
export const MIN_RETRY_MS = 1000;

/**
 * Delay before retry `attempt` (0 = first) after a failure. Never so long that the certificate
 * expires in between: while it is valid, at most half of the time it has left (so several tries
 * still fit before expiry).
 */
export function retryDelay(
  attempt: number,
  now: number,
  notAfter: number | undefined,
  random: Random,
  policy = RETRY_POLICY,
): number {
  const d = backoffDelay(policy, attempt, random);
  if (notAfter === undefined || notAfter <= now) return d;
  return Math.max(MIN_RETRY_MS, Math.min(d, Math.floor((notAfter - now) / 2)));
}

export { formatDuration } from '../lib/duration';
