import type { Random } from '../lib/backoff';
import { AgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import type { HeldCert } from './inspect';
import { giveUpReason, retryDelay } from './policy';
import { FAILED, type Stage } from './round';
import { formatDuration, isoTime as iso } from '../lib/duration';

/** The failures since the last success: how many, the last one, where, since when. */
export class Failures {
  count = 0;
  lastError: AgentError | undefined;
  lastStage: Stage | undefined;
  since: number | undefined;

  record(err: AgentError, stage: Stage, now: number): void {
    this.count++;
    this.lastError = err;
    this.lastStage = stage;
    this.since ??= now;
  }

  clear(): void {
    this.count = 0;
    this.lastError = undefined;
    this.lastStage = undefined;
    this.since = undefined;
  }
}

/**
 * How long to wait after failure number `count` (pure policy: policy.ts). A CA that asked to
 * slow down is honoured: never sooner than its retry hint, and an overloaded CA
 * (RESOURCE_EXHAUSTED) gets the slow backoff even once the certificate has expired.
 */
export function retryDelayFor(
  err: AgentError,
  count: number,
  now: number,
  notAfter: number | undefined,
  random: Random,
): number {
  return retryDelay(count - 1, now, notAfter, random, {
    hintMs: err.retryAfterMs,
    overloaded: err.code === 'AGENT_E_CA_OVERLOADED',
  });
}

/**
 * The error that ends the agent after this failure, or undefined to retry (policy.ts's
 * giveUpReason): the certificate has expired (or there is none) and the CA refuses, or a
 * configuration problem, which ends it as itself (exit 78). It is never reported as the CA
 * refusing when something else failed.
 */
export function fatalFailure(
  err: AgentError,
  current: HeldCert | undefined,
  now: number,
  certsDir: string,
): AgentError | undefined {
  const reason = giveUpReason(err, current?.notAfter, now);
  if (reason === 'config') return err;
  if (reason !== 'refused') return undefined;
  return new AgentError(
    'AGENT_E_CERT_EXPIRED',
    `the workload certificate ${current ? `expired at ${iso(current.notAfter)}` : 'is missing'} and the CA refuses to issue one (${err.code}: ${err.message}); put a fresh bootstrap set (cert-chain.pem, key.pem, root-cert.pem) in ${certsDir} and restart the agent`,
    { cause: err },
  );
}

/** The log line of a failure: a warning while the certificate stays valid, else an error. */
export function logFailure(
  log: Logger,
  err: AgentError,
  delay: number,
  failures: Failures,
  current: HeldCert | undefined,
  now: number,
): void {
  const stage = failures.lastStage ?? 'ca';
  const fields = {
    code: err.code,
    stage,
    attempt: failures.count,
    retryInMs: delay,
    ...(err.retryAfterMs !== undefined ? { retryHintMs: err.retryAfterMs } : {}),
    notAfter: current ? iso(current.notAfter) : undefined,
  };
  const what = err.code === 'AGENT_E_CERT_TIMEOUT' ? 'certificate renewal failed' : FAILED[stage];
  // The CA's messages end in "will retry" already: said once, with when.
  const said = err.message.replace(/[;.,]? ?will retry$/i, '');
  const text = `${what}: ${said}. Will retry in ${formatDuration(delay)}`;
  // Still valid: a warning. Expired (or about to within the retry): an error.
  if (current && current.notAfter > now + delay) log.warn(fields, text);
  else log.error(fields, text);
}

/**
 * After a failure: the error that ends the agent (fatalFailure), or the wait until the retry
 * (retryDelayFor), logged (logFailure).
 */
export function afterFailure(
  err: AgentError,
  failures: Failures,
  current: HeldCert | undefined,
  at: { readonly now: number; readonly certsDir: string; readonly random: Random },
  log: Logger,
): { fatal: AgentError } | { delay: number } {
  const fatal = fatalFailure(err, current, at.now, at.certsDir);
  if (fatal) return { fatal };
  const delay = retryDelayFor(err, failures.count, at.now, current?.notAfter, at.random);
  logFailure(log, err, delay, failures, current, at.now);
  return { delay };
}
