/**
 * One CSR round, step by step (key, CSR, read, credential, CA, check, write), and the deadline
 * that bounds a round. The manager decides when a round runs and what its outcome means.
 */
import * as path from 'node:path';
import type { CaConfig } from '../config/types';
import type { IdentitySource } from '../identity/index';
import type { Random } from '../lib/backoff';
import type { Clock } from '../lib/clock';
import { formatDuration } from '../lib/duration';
import { AgentError } from '../lib/errors';
import { joinPem } from '../lib/pem';
import type { Logger } from '../observe/index';
import { createCsr } from './csr';
import { credentialInput } from './inspect';
import type { WorkloadKey } from './keys';
import { planRenewal, renewTime, type Schedule } from './policy';
import { CHAIN_FILE, ROOT_FILE } from './store';
import type { CaConnector, CertStoreLike } from './types';
import { checkIssued, type IssuedCert } from './validate';

/** Allowed clock skew between this host and the CA when checking notBefore. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** Where a CSR round is: named in the log and in status when it fails or is stuck. */
export type Stage = 'start' | 'identity' | 'key' | 'read' | 'credential' | 'ca' | 'check' | 'write';

export interface Progress {
  stage: Stage;
}

/** What failed, for the log line of a failed round (the error's message says why). */
export const FAILED: Record<Stage, string> = {
  start: 'reading the certificate set failed',
  identity: 'getting the workload identity failed',
  key: 'making the key failed',
  read: 'reading the certificate set failed',
  credential: 'getting the credential for the CSR failed',
  ca: 'CSR signing failed', // Istio 1.0's words
  check: "the CA's answer was refused",
  write: 'writing the new certificate set failed',
};

/** The error of a round past its deadline: where it was stuck, and what to check. */
export function timeoutError(
  stage: Stage,
  ms: number,
  ca: CaConfig,
  dir: string,
  sourceKind: IdentitySource['kind'],
): AgentError {
  const gcp = sourceKind === 'gcp';
  const files = `check that key.pem, cert-chain.pem and root-cert.pem in ${dir} are regular files`;
  const [where, advice] = {
    start: [`reading the certificate set in ${dir}`, files],
    identity: [
      gcp
        ? `asking the GCE metadata server at ${ca.gceMetadataHost} for the service account`
        : `reading the identity from ${path.join(dir, CHAIN_FILE)}`,
      gcp ? 'check GCE_METADATA_HOST' : files,
    ],
    key: [
      'waiting for the new key',
      `the host may be overloaded (${ca.keyAlgorithm}${ca.keyAlgorithm === 'RSA' ? `-${ca.rsaKeySize}` : ''} keys)`,
    ],
    read: [`reading the certificate set in ${dir}`, files],
    credential: [
      gcp
        ? `getting an identity token from the GCE metadata server at ${ca.gceMetadataHost}`
        : 'choosing the credential',
      gcp ? 'check GCE_METADATA_HOST' : files,
    ],
    ca: [`waiting for the CA at ${ca.address}`, `check the CA at ${ca.address}`],
    check: ["checking the CA's answer", 'report it with the log'],
    write: [`writing the new set to ${dir}`, `check the disk holding ${dir}`],
  }[stage];
  const what = stage === 'start' ? 'reading the certificate set' : 'certificate renewal';
  const then = stage === 'start' ? '' : 'abandoned, will retry; ';
  return new AgentError(
    'AGENT_E_CERT_TIMEOUT',
    `${what} did not finish within ${formatDuration(ms)} (2 × CA_CALL_TIMEOUT + 30s): stuck ${where}; ${then}${advice}`,
    { details: { stage, timeoutMs: ms } },
  );
}

/**
 * Runs `fn` with a signal that aborts after `ms` (with `expired()`'s error) or when `stop`
 * aborts, and settles as soon as either happens, whether or not `fn` notices (a read of a FIFO
 * never returns). What `fn` does afterwards is ignored: it checks its signal before each step
 * and never writes once aborted.
 */
export function withDeadline<T>(
  clock: Clock,
  stop: AbortSignal,
  ms: number,
  expired: () => Error,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const attempt = new AbortController();
  const timer = clock.setTimeout(() => {
    attempt.abort(expired());
  }, ms);
  const onStop = (): void => {
    attempt.abort(stop.reason);
  };
  if (stop.aborted) onStop();
  else stop.addEventListener('abort', onStop, { once: true });
  const cut = new Promise<never>((_, reject) => {
    const fail = (): void => {
      reject(attempt.signal.reason as Error);
    };
    if (attempt.signal.aborted) fail();
    else attempt.signal.addEventListener('abort', fail, { once: true });
  });
  // A synchronous throw in `fn` becomes a rejection here, so the timer is always cancelled.
  const work = new Promise<T>((resolve) => {
    resolve(fn(attempt.signal));
  });
  work.catch(() => undefined); // an abandoned round's late failure is nobody's business
  cut.catch(() => undefined);
  return Promise.race([work, cut]).finally(() => {
    timer.cancel();
    stop.removeEventListener('abort', onStop);
  });
}

export interface RoundInput {
  /** The settings in force when the round began. */
  readonly ca: CaConfig;
  readonly identity: string;
  readonly store: CertStoreLike;
  readonly source: IdentitySource;
  readonly connect: CaConnector;
  /** The key being made for this certificate; `keyFailed` runs when making it failed. */
  readonly key: Promise<WorkloadKey>;
  readonly keyFailed: () => void;
  /** Failures since the last success, for the log line ("retrial #n"). */
  readonly attempt: number;
  /** Whether this is the timely renewal of our own certificate (policy.ts's Schedule). */
  readonly schedule: Schedule;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** The credential chosen is the bootstrap set: the agent's own certificate had expired. */
  readonly bootstrapFallback?: () => void;
  /** Runs the write after any earlier round's (an abandoned round may still be writing). */
  readonly serialWrite: <T>(fn: () => Promise<T>) => Promise<T>;
}

export interface RoundResult {
  readonly issued: IssuedCert;
  readonly generation: string;
  /** When to renew the new certificate (policy.ts's planRenewal). */
  readonly renewAt: number;
  /** That point as a share of ratio × lifetime, kept with the set. */
  readonly renewShare: number;
  /** Milliseconds per step, for the log. */
  readonly timing: Readonly<Record<string, number>>;
}

/**
 * One CSR: reads the set, gets the credential, makes the CA client and starts connecting, waits
 * for the key, makes the CSR, calls the CA, checks the answer and writes the new set. `progress.stage` says where it is. Checks `signal`
 * between steps and never writes once it has aborted. Throws what failed.
 */
export async function csrRound(
  input: RoundInput,
  signal: AbortSignal,
  progress: Progress,
): Promise<RoundResult> {
  const { ca, identity, store, source, connect, clock } = input;
  // Timing measurements for the log, from the process's own high-resolution timer.
  const t0 = performance.now();
  const timing: Record<string, number> = {};
  const lap = (name: string, since: number): number => {
    const now = performance.now();
    timing[name] = Math.round((now - since) * 10) / 10;
    return now;
  };
  // The set and the credential first, then the CA client made and connecting: building its TLS
  // context (the first one builds Node's root store) and the handshake overlap the key still
  // being made in the thread pool (RSA-2048: ~50 ms) instead of following it.
  progress.stage = 'read';
  const set = await store.read();
  const bootstrap = await store.readBootstrap();
  signal.throwIfAborted();
  let t = lap('readMs', t0);
  progress.stage = 'credential';
  const credential = await source.credential(
    credentialInput(set),
    credentialInput(bootstrap),
    clock.now(),
    signal,
  );
  signal.throwIfAborted();
  if (
    credential.kind === 'mtls' &&
    bootstrap.chainPem !== undefined &&
    set.chainPem !== bootstrap.chainPem &&
    credential.certChainPem === bootstrap.chainPem
  )
    input.bootstrapFallback?.();
  t = lap('credentialMs', t);
  if (!set.rootPem)
    throw new AgentError(
      'AGENT_E_BOOTSTRAP_MISSING',
      `${path.join(store.dir, ROOT_FILE)} is missing`,
    );
  progress.stage = 'ca';
  const client = await connect(credential, set.rootPem, ca);
  let response: string[];
  let key: WorkloadKey;
  try {
    client.connect?.();
    t = lap('connectMs', t);
    progress.stage = 'key';
    try {
      key = await input.key;
    } catch (e) {
      input.keyFailed();
      throw e;
    }
    signal.throwIfAborted();
    t = lap('keyWaitMs', t);
    const csrPem = await createCsr(key, identity, ca.org);
    t = lap('csrMs', t);
    progress.stage = 'ca';
    input.log.info({ attempt: input.attempt }, `Sending CSR (retrial #${input.attempt}) ...`);
    response = await client.sign({ csrPem, identity, ttlMs: ca.certTtlMs }, signal);
  } finally {
    client.close();
  }
  signal.throwIfAborted();
  t = lap('rpcMs', t);
  progress.stage = 'check';
  const issued = checkIssued({
    response,
    key: key.object,
    identity,
    rootPem: set.rootPem,
    now: clock.now(),
    skewMs: CLOCK_SKEW_MS,
    ttlMs: ca.certTtlMs,
  });
  const now = clock.now();
  const renewal = planRenewal(issued, ca.renewRatio, input.schedule, now, input.random);
  if (renewTime(issued.notBefore, issued.notAfter, ca.renewRatio, 1) <= now) {
    throw new AgentError(
      'AGENT_E_CERT_VALIDITY',
      'got a certificate that should be renewed now (its lifetime is too short)',
    );
  }
  t = lap('checkMs', t);
  progress.stage = 'write';
  const rootPem = set.rootPem;
  const generation = await input.serialWrite(() => {
    // Abandoned (deadline, stop) before its turn to write: never write.
    signal.throwIfAborted();
    return store.write(
      { keyPem: key.pem, chainPem: joinPem(issued.chain), rootPem },
      {
        issuer: 'agent',
        identity,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        serial: issued.serial,
        renewShare: renewal.share,
      },
    );
  });
  // Abandoned while writing: the set may be on disk; the next round replaces it.
  signal.throwIfAborted();
  lap('writeMs', t);
  lap('totalMs', t0);
  // Milliseconds since this process started (performance.timeOrigin), for start-up timing.
  timing.sinceProcessStartMs = Math.round(performance.now());
  return { issued, generation, renewAt: renewal.at, renewShare: renewal.share, timing };
}
