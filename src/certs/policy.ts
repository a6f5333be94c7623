import type { CaConfig } from '../config/types';
import type { BackoffPolicy, Random } from '../lib/backoff';
import { EXIT_CONFIG } from '../lib/errors';

/**
 * How a certificate was obtained, which decides how widely its renewal point is spread:
 * `on` schedule, the timely renewal of the agent's own certificate with no failure since; `off`
 * schedule, anything else (the first CSR since start, a retry after a failure, a renewal forced
 * by a new identity). A fleet gets its certificates off schedule together (a fleet start, a CA
 * coming back): spreading those renewals over most of the renewal period breaks the burst up
 * once, and on-schedule renewals then keep their phases (bench/fleet.ts measures both).
 */
export type Schedule = 'on' | 'off';

/**
 * The earliest renewal point, as a share of ratio × lifetime: renewal points are drawn uniformly
 * over [RENEW_FROM[schedule], 1] × ratio × lifetime. The jitter only ever makes a renewal earlier,
 * so with ratio 0.5 a CA outage shorter than half the lifetime never lets a certificate expire.
 */
export const RENEW_FROM: Readonly<Record<Schedule, number>> = { on: 0.9, off: 0.1 };

/** The renewal point at `share` of ratio × lifetime; never after expiry. */
export function renewTime(
  notBefore: number,
  notAfter: number,
  ratio: number,
  share: number,
): number {
  const lifetime = Math.max(0, notAfter - notBefore);
  return Math.min(notAfter, notBefore + Math.round(lifetime * ratio * share));
}

/** When to renew a certificate, and the share of ratio × lifetime that point is at. */
export interface RenewalPoint {
  readonly at: number;
  /** Kept with the set (meta.json), so a restart renews at the same point. */
  readonly share: number;
}

/**
 * When to renew a certificate valid from `notBefore` to `notAfter`, obtained `schedule` at `now`:
 * a point drawn uniformly over [RENEW_FROM[schedule], 1] × ratio × lifetime (Istio 1.0 renewed at
 * exactly 50 %). Never before `now` (a lifetime of seconds, whose notBefore is rounded down to
 * the second, would otherwise be renewed at once); when even the latest point (share 1) has
 * passed, that point: the certificate is due already.
 */
export function planRenewal(
  cert: { readonly notBefore: number; readonly notAfter: number },
  ratio: number,
  schedule: Schedule,
  now: number,
  random: Random,
): RenewalPoint {
  const span = Math.max(0, cert.notAfter - cert.notBefore) * ratio;
  const elapsed = span > 0 ? (now - cert.notBefore) / span : 1;
  const from = Math.max(RENEW_FROM[schedule], Math.min(1, elapsed));
  const share = from + (1 - from) * random();
  return { at: renewTime(cert.notBefore, cert.notAfter, ratio, share), share };
}

/** A renewal share read back from disk, if it is one (0 < share ≤ 1). */
export function validShare(share: unknown): number | undefined {
  return typeof share === 'number' && share > 0 && share <= 1 ? share : undefined;
}

/**
 * The renewal share of a certificate held: the one drawn when it was obtained; for a set written
 * without one (by an earlier version), an on-schedule draw.
 */
export function heldShare(share: number | undefined, random: Random): number {
  return validShare(share) ?? RENEW_FROM.on + (1 - RENEW_FROM.on) * random();
}

/**
 * Retries after a failed CSR while the certificate is valid: 5 s first (as 1.0), doubling,
 * capped at 5 minutes, ±20 % jitter.
 */
export const RETRY_POLICY: BackoffPolicy = {
  initialMs: 5000,
  multiplier: 2,
  maxMs: 5 * 60_000,
  jitter: 0.2,
};

/**
 * Retries once the certificate has expired, or when there is none: the workload is down, so a
 * retry every few seconds (1 s doubling to 10 s), spread ±50 % so a fleet does not retry in step.
 * A CA that is up but overloaded says so (RESOURCE_EXHAUSTED, retry hints) and gets the slow
 * policy instead.
 */
export const EXPIRED_RETRY_POLICY: BackoffPolicy = {
  initialMs: 1000,
  multiplier: 2,
  maxMs: 10_000,
  jitter: 0.5,
};

/** The shortest retry (before jitter), however close expiry is. */
export const MIN_RETRY_MS = 1000;

/** The longest wait a CA's retry hint can impose; a larger hint is taken as this. */
export const MAX_RETRY_HINT_MS = 10 * 60_000;

/** A hinted wait is spread over [hint, hint × (1 + HINT_JITTER)]: never shorter than asked. */
export const HINT_JITTER = 0.2;

export interface RetryOptions {
  /**
   * The CA asked to wait at least this long (gRPC `grpc-retry-pushback-ms`, or a
   * `google.rpc.RetryInfo` in the status details).
   */
  readonly hintMs?: number | undefined;
  /** The CA said it is overloaded (RESOURCE_EXHAUSTED): back off as while valid, even expired. */
  readonly overloaded?: boolean | undefined;
}

/**
 * Delay before retry `attempt` (0 = first) after a failure. While the certificate is valid: the
 * slow RETRY_POLICY, never so long that it expires in between (at most half of the time it has
 * left). Once it has expired, or when there is none: EXPIRED_RETRY_POLICY, seconds apart.
 * Always jittered; never shorter than a hint the CA sent (capped at MAX_RETRY_HINT_MS).
 */
export function retryDelay(
  attempt: number,
  now: number,
  notAfter: number | undefined,
  random: Random,
  opts: RetryOptions = {},
): number {
  const valid = notAfter !== undefined && notAfter > now;
  const policy = valid || opts.overloaded ? RETRY_POLICY : EXPIRED_RETRY_POLICY;
  let base = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  if (valid) base = Math.min(base, Math.floor((notAfter - now) / 2));
  base = Math.max(MIN_RETRY_MS, base);
  const r = random();
  let delay = Math.round(base * (1 + policy.jitter * (2 * r - 1)));
  if (opts.hintMs !== undefined && opts.hintMs > 0) {
    const hint = Math.min(opts.hintMs, MAX_RETRY_HINT_MS);
    delay = Math.max(delay, Math.round(hint * (1 + HINT_JITTER * r)));
  }
  return delay;
}

/**
 * Delay before the first CSR after start. When the certificate held is still valid (a valid
 * bootstrap set, or our own that is due), a random share of `jitterMs`, at most a tenth of the
 * time it has left, so a fleet started at once does not reach the CA at once. Never when there
 * is no valid certificate: then the workload waits for it.
 */
export function firstCsrDelay(
  now: number,
  notAfter: number | undefined,
  jitterMs: number,
  random: Random,
): number {
  if (notAfter === undefined || notAfter <= now || jitterMs <= 0) return 0;
  return Math.floor(random() * Math.min(jitterMs, (notAfter - now) / 10));
}

/**
 * After a reload changed CERT_RENEW_RATIO: the renewal of our own valid certificate at the same
 * share of the new ratio × lifetime (the fleet keeps its spread); undefined for any other.
 */
export function renewalAfterRatioChange(
  cur: {
    readonly issuer: string;
    readonly notBefore: number;
    readonly notAfter: number;
    readonly renewShare?: number | undefined;
  },
  ratio: number,
  now: number,
  random: Random,
): RenewalPoint | undefined {
  if (cur.issuer !== 'agent' || cur.notAfter <= now) return undefined;
  const share = heldShare(cur.renewShare, random);
  return { at: renewTime(cur.notBefore, cur.notAfter, ratio, share), share };
}

export type StartPlan =
  | { readonly keep: true; readonly renewAt: number; readonly share: number }
  | { readonly keep: false; readonly heldUntil: number | undefined; readonly delayMs: number };

/**
 * What start does with the certificate held: keep one this agent obtained for this identity
 * (`ours`) while it is valid and its renewal is not due; otherwise a CSR before ready, spread by
 * firstCsrDelay while the certificate held (a bootstrap one, or ours that is due) is valid. The
 * renewal point of a kept certificate is the one drawn when it was obtained (`share`, kept with
 * the set), so a fleet rebooted together keeps the spread it had; a set written without one
 * (an earlier version) gets an on-schedule draw.
 */
export function startPlan(
  held:
    | {
        readonly notBefore: number;
        readonly notAfter: number;
        readonly ours: boolean;
        readonly share?: number | undefined;
      }
    | undefined,
  now: number,
  renewRatio: number,
  firstCsrJitterMs: number,
  random: Random,
): StartPlan {
  if (held?.ours && held.notAfter > now) {
    const share = heldShare(held.share, random);
    const at = renewTime(held.notBefore, held.notAfter, renewRatio, share);
    if (at > now) return { keep: true, renewAt: at, share };
  }
  const heldUntil = held && held.notAfter > now ? held.notAfter : undefined;
  return {
    keep: false,
    heldUntil,
    delayMs: firstCsrDelay(now, heldUntil, firstCsrJitterMs, random),
  };
}

/** Room for the local steps of a renewal: waiting for the key, the CSR, the checks, the write. */
export const ROTATION_SLACK_MS = 30_000;

/**
 * The bound on one whole renewal attempt (key wait, credential, CA call, checks, write): the
 * credential (a metadata-server request) and the CA call may each take CA_CALL_TIMEOUT, plus
 * slack for the local steps. An attempt past it is abandoned and counted as a failure.
 */
export function rotationDeadlineMs(callTimeoutMs: number): number {
  return 2 * callTimeoutMs + ROTATION_SLACK_MS;
}

/** Codes by which the CA refuses, rather than being away: past expiry, the agent gives up. */
export const CA_REFUSALS: ReadonlySet<string> = new Set(['AGENT_E_CA_REJECTED', 'AGENT_E_CA_AUTH']);

/**
 * Whether a failed renewal ends the agent. Only once the certificate has expired (or there is
 * none) and the failure is permanent: `refused` when the CA refuses (CA_REFUSALS), `config` for
 * a configuration problem (exit 78). Anything else (the CA away, a full disk, an unreadable
 * file) is retried: undefined.
 */
export function giveUpReason(
  failure: { readonly code: string; readonly retryable: boolean; readonly exitCode: number },
  notAfter: number | undefined,
  now: number,
): 'refused' | 'config' | undefined {
  const expired = notAfter === undefined || notAfter <= now;
  if (!expired || failure.retryable) return undefined;
  if (CA_REFUSALS.has(failure.code)) return 'refused';
  if (failure.exitCode === EXIT_CONFIG) return 'config';
  return undefined;
}

/** Settings a reload (SIGHUP) applies at the next CSR, with the variable each comes from. */
export const RELOADABLE: readonly (readonly [keyof CaConfig, string])[] = [
  ['address', 'CITADEL_ADDRESS'],
  ['serverName', 'CITADEL_SERVER_NAME'],
  ['api', 'CA_API'],
  ['certTtlMs', 'WORKLOAD_CERT_TTL'],
  ['org', 'WORKLOAD_CERT_ORG'],
  ['keyAlgorithm', 'WORKLOAD_KEY_ALGORITHM'],
  ['rsaKeySize', 'WORKLOAD_RSA_KEY_SIZE'],
  ['identity', 'WORKLOAD_IDENTITY'],
  ['renewRatio', 'CERT_RENEW_RATIO'],
  ['callTimeoutMs', 'CA_CALL_TIMEOUT'],
  ['gceMetadataHost', 'GCE_METADATA_HOST'],
  ['gceAudience', 'GCE_IDENTITY_AUDIENCE'],
];

/** Settings used once, at start: a reload names them and keeps the values in force. */
export const RESTART_ONLY: readonly (readonly [keyof CaConfig, string])[] = [
  ['env', 'CITADEL_ENV'],
  ['certsDir', 'CERTS_DIR'],
  ['firstCsrJitterMs', 'CERT_FIRST_CSR_JITTER'],
];

export interface SettingsChange {
  /** Variables whose new values apply at the next CSR. */
  readonly applied: readonly string[];
  /** Variables that changed but are read only at start (their values from start stay). */
  readonly restartNeeded: readonly string[];
  /** The settings in force after the reload. */
  readonly next: CaConfig;
}

/**
 * What a reload changes in the certificate settings: RELOADABLE ones apply at the next CSR;
 * RESTART_ONLY ones, and an identity no longer configured (it would be derived anew, which
 * happens at start), keep the values from start.
 */
export function settingsChange(prev: CaConfig, next: CaConfig): SettingsChange {
  const applied: string[] = [];
  const restartNeeded: string[] = [];
  for (const [key, name] of RELOADABLE) {
    if (prev[key] === next[key]) continue;
    if (key === 'identity' && next.identity === undefined) restartNeeded.push(name);
    else applied.push(name);
  }
  for (const [key, name] of RESTART_ONLY) if (prev[key] !== next[key]) restartNeeded.push(name);
  return {
    applied,
    restartNeeded,
    next: {
      ...next,
      env: prev.env,
      certsDir: prev.certsDir,
      firstCsrJitterMs: prev.firstCsrJitterMs,
      identity: next.identity ?? prev.identity,
    },
  };
}
