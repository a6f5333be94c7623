import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Component, ComponentDeps, ComponentStatus } from '../component';
import type { AgentConfig, CaConfig, KeyAlgorithm } from '../config/types';
import { AgentError, EXIT_CONFIG, toAgentError } from '../lib/errors';
import type { TimerHandle } from '../lib/clock';
import type { Logger } from '../observe/logger';
import { createCsr } from './csr';
import { generateWorkloadKey, type WorkloadKey } from './keys';
import { extractCertificates, joinPem } from '../lib/pem';
import { formatDuration } from '../lib/duration';
import { firstCsrDelay, renewAt, retryDelay, rotationDeadlineMs } from './policy';
import { CHAIN_FILE, KEY_FILE, ROOT_FILE, type CertStore, type StoredSet } from './store';
import type { CredentialInput, IdentitySource } from '../identity/index';
import type { CaConnector } from './types';
import { checkIssued } from './validate';
import * as path from 'node:path';

/** Allowed clock skew between this host and the CA when checking notBefore. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** What the manager uses of the store (an interface, so a test can hold the set in memory). */
export type CertStoreLike = Pick<
  CertStore,
  'dir' | 'check' | 'prepare' | 'read' | 'readBootstrap' | 'write' | 'notes'
>;

export interface CertManagerOptions {
  readonly ca: CaConfig;
  readonly store: CertStoreLike;
  readonly connect: CaConnector;
  readonly source: IdentitySource;
  /** Makes keys; injectable so a test can count or slow it. */
  readonly keygen?: (algorithm: KeyAlgorithm, rsaBits: number) => Promise<WorkloadKey>;
  /** Loads what the first CSR needs (the gRPC stack) while the key is being made. */
  readonly warmup?: () => Promise<unknown>;
}

/** Where a CSR round is: named in the log and in status when it fails or is stuck. */
type Stage = 'start' | 'identity' | 'key' | 'read' | 'credential' | 'ca' | 'check' | 'write';

interface Progress {
  stage: Stage;
}

/** What failed, for the log line of a failed round (the error's message says why). */
const FAILED: Record<Stage, string> = {
  start: 'reading the certificate set failed',
  identity: 'getting the workload identity failed',
  key: 'making the key failed',
  read: 'reading the certificate set failed',
  credential: 'getting the credential for the CSR failed',
  ca: 'CSR signing failed', // Istio 1.0's words
  check: "the CA's answer was refused",
  write: 'writing the new certificate set failed',
};

/** Settings a reload (SIGHUP) applies at the next CSR, with the variable each comes from. */
const RELOADABLE: readonly (readonly [keyof CaConfig, string])[] = [
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
const RESTART_ONLY: readonly (readonly [keyof CaConfig, string])[] = [
  ['env', 'CITADEL_ENV'],
  ['certsDir', 'CERTS_DIR'],
  ['firstCsrJitterMs', 'CERT_FIRST_CSR_JITTER'],
];

/** Codes by which the CA refuses, rather than being away: past expiry, the agent gives up. */
const CA_REFUSALS = new Set(['AGENT_E_CA_REJECTED', 'AGENT_E_CA_AUTH']);

interface Current {
  readonly notBefore: number;
  readonly notAfter: number;
  readonly serial: string;
  readonly issuer: 'agent' | 'bootstrap';
  readonly generation: string | undefined;
}

/**
 * The certificate component: obtains the workload certificate by CSR and keeps it renewed.
 * Decisions (when to renew, how long to wait after a failure) are the pure functions in
 * policy.ts; this class does the I/O: key, CSR, RPC, checks, the atomic set swap.
 */
export class CertManager implements Component {
  readonly name = 'certs';
  private readonly log: Logger;
  /** The CA settings in force; a reload replaces them for the next CSR. */
  private ca: CaConfig;
  private identity = '';
  private current: Current | undefined;
  private nextRenewal: number | undefined;
  private timer: TimerHandle | undefined;
  private failures = 0;
  private lastError: AgentError | undefined;
  private lastStage: Stage | undefined;
  private failingSince: number | undefined;
  private nextKey: Promise<WorkloadKey> | undefined;
  private rotating: Promise<boolean> | undefined;
  /** Writes of the set, one at a time (an abandoned round may still be writing). */
  private writing: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly abort = new AbortController();
  private rotations = 0;

  constructor(
    private readonly deps: ComponentDeps,
    private readonly opts: CertManagerOptions,
  ) {
    this.log = deps.log.child({ component: 'certs' });
    this.ca = opts.ca;
    // The first key is made in the thread pool while the rest of the agent is built and the
    // files are read; the gRPC stack loads meanwhile.
    this.nextKey = this.keygen();
    this.opts.warmup?.().catch(() => undefined);
  }

  /** Starts making a key with the settings in force (in the thread pool). */
  private keygen(): Promise<WorkloadKey> {
    const { keyAlgorithm, rsaKeySize } = this.ca;
    const p = this.opts.keygen
      ? this.opts.keygen(keyAlgorithm, rsaKeySize)
      : generateWorkloadKey(keyAlgorithm, rsaKeySize);
    p.catch(() => undefined);
    return p;
  }

  async start(signal: AbortSignal): Promise<void> {
    const onAbort = (): void => {
      this.abort.abort(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    const { store, source } = this.opts;
    const ca = this.ca;
    this.log.info(
      { certsDir: store.dir, env: source.kind, api: ca.api, ca: ca.address },
      'Node Agent starts successfully.',
    );
    // Reading the directory is bounded too: a file that blocks (a FIFO) must not hang start.
    const set = await this.bounded({ stage: 'start' }, async () => {
      const took = await store.prepare();
      for (const n of store.notes) this.log.warn({ file: n.file }, n.message);
      if (took)
        this.log.info(
          { certsDir: store.dir },
          'took over the certificate files in the directory as the bootstrap set',
        );
      return store.read();
    });
    this.checkPresent(set);
    this.current = this.describe(set);
    this.identity = ca.identity ?? (await this.resolveIdentity(set));
    this.log.info({ identity: this.identity }, `workload identity is ${this.identity}`);

    const now = this.deps.clock.now();
    const cur = this.current;
    const ours = cur && set.meta.issuer === 'agent' && set.meta.identity === this.identity;
    if (ours && cur.notAfter > now) {
      const at = renewAt(cur.notBefore, cur.notAfter, ca.renewRatio, this.deps.random);
      if (at > now) {
        this.log.info(
          { notAfter: iso(cur.notAfter), serial: cur.serial },
          `keeping the certificate issued earlier (valid until ${iso(cur.notAfter)})`,
        );
        this.schedule(at);
        return;
      }
    }
    // First start (bootstrap set), another identity, or due: get a certificate before ready.
    // While the certificate held is valid, spread the first CSR a little, so a fleet started
    // at once does not reach the CA at once; without a valid one, at once.
    const held = cur && cur.notAfter > now ? cur.notAfter : undefined;
    const spread = firstCsrDelay(now, held, ca.firstCsrJitterMs, this.deps.random);
    if (spread > 0) {
      this.log.info(
        { delayMs: spread, notAfter: iso(held!) },
        `first CSR in ${formatDuration(spread)} (spread over CERT_FIRST_CSR_JITTER; the certificate held is valid until ${iso(held!)})`,
      );
      this.nextRenewal = now + spread;
      await this.deps.clock.sleep(spread, this.abort.signal).catch(() => undefined);
    }
    for (;;) {
      if (this.abort.signal.aborted)
        throw new AgentError('AGENT_E_INTERNAL', 'stopped before the first certificate was issued');
      if (await this.rotate()) return;
      if (this.abort.signal.aborted) continue;
      const err = this.lastError!;
      const fatal = this.giveUp(err);
      if (fatal) throw fatal;
      const delay = this.retryIn(err);
      this.logFailure(err, delay);
      this.nextRenewal = this.deps.clock.now() + delay;
      await this.deps.clock.sleep(delay, this.abort.signal).catch(() => undefined);
    }
  }

  /** Before anything changes (agent preflight): the files start needs are there. */
  async preflight(): Promise<void> {
    await this.opts.store.check();
    this.checkPresent(await this.opts.store.read());
  }

  /**
   * The identity to ask for when none is configured. A retryable failure (the GCE metadata
   * server away or answering badly) is retried like a CSR, with status and log saying why;
   * anything else ends start.
   */
  private async resolveIdentity(set: StoredSet): Promise<string> {
    for (;;) {
      const progress: Progress = { stage: 'identity' };
      try {
        const id = await this.bounded(progress, (signal) =>
          this.opts.source.defaultIdentity({ chainPem: set.chainPem }, signal),
        );
        if (this.lastStage === 'identity') {
          this.failures = 0;
          this.lastError = undefined;
          this.lastStage = undefined;
          this.failingSince = undefined;
        }
        return id;
      } catch (e) {
        if (this.abort.signal.aborted)
          throw new AgentError(
            'AGENT_E_INTERNAL',
            'stopped before the workload identity was known',
          );
        const err = toAgentError(e);
        if (!err.retryable) throw err;
        this.recordFailure(err, 'identity');
        const delay = this.retryIn(err);
        this.logFailure(err, delay);
        this.nextRenewal = this.deps.clock.now() + delay;
        await this.deps.clock.sleep(delay, this.abort.signal).catch(() => undefined);
      }
    }
  }

  /**
   * Applies changed certificate settings (SIGHUP) at the next CSR: the CA's address, name, API
   * and call timeout, the lifetime asked for, the key (a new one is made now), the subject
   * organisation, the GCE metadata host and audience. A new renew ratio reschedules the renewal
   * of the certificate held; a new WORKLOAD_IDENTITY renews at once. CITADEL_ENV, CERTS_DIR and
   * CERT_FIRST_CSR_JITTER are read once at start: a change is logged as needing a restart and
   * the values in force are kept. The log names what took effect.
   */
  reload(config: AgentConfig): Promise<void> {
    const prev = this.ca;
    const next = config.ca;
    const applied: string[] = [];
    const restartNeeded: string[] = [];
    for (const [key, name] of RELOADABLE) {
      if (prev[key] === next[key]) continue;
      // An identity no longer configured would be derived anew: that happens at start.
      if (key === 'identity' && next.identity === undefined) restartNeeded.push(name);
      else applied.push(name);
    }
    for (const [key, name] of RESTART_ONLY) if (prev[key] !== next[key]) restartNeeded.push(name);
    if (applied.length === 0 && restartNeeded.length === 0) {
      this.log.debug('certificate settings unchanged by reload');
      return Promise.resolve();
    }
    this.ca = {
      ...next,
      env: prev.env,
      certsDir: prev.certsDir,
      firstCsrJitterMs: prev.firstCsrJitterMs,
      identity: next.identity ?? prev.identity,
    };
    this.opts.source.reconfigure?.(this.ca);
    if (prev.keyAlgorithm !== next.keyAlgorithm || prev.rsaKeySize !== next.rsaKeySize) {
      // The key made in advance has the old settings: make the next one with the new ones.
      this.nextKey = this.keygen();
    }
    const idle = !this.stopped && this.rotating === undefined && this.timer !== undefined;
    if (applied.includes('WORKLOAD_IDENTITY') && next.identity !== undefined) {
      this.identity = next.identity;
      // The certificate held is for another identity: renew now (a round in flight renews
      // again when it ends, see rotateOnce).
      if (idle) this.schedule(this.deps.clock.now());
    } else if (applied.includes('CERT_RENEW_RATIO') && idle && !this.lastError && this.current) {
      const cur = this.current;
      if (cur.issuer === 'agent' && cur.notAfter > this.deps.clock.now())
        this.schedule(renewAt(cur.notBefore, cur.notAfter, this.ca.renewRatio, this.deps.random));
    }
    if (applied.length > 0) {
      const at = this.nextRenewal;
      const when =
        at === undefined
          ? ''
          : `, next renewal at ${iso(at)} (in ${formatDuration(Math.max(0, at - this.deps.clock.now()))})`;
      this.log.info(
        { applied, nextRenewal: at !== undefined ? iso(at) : undefined },
        `certificate settings changed by reload: ${applied.join(', ')}; they apply at the next CSR${when}`,
      );
    }
    if (restartNeeded.length > 0) {
      this.log.warn(
        { restartNeeded },
        `certificate settings changed by reload that are only read at start: ${restartNeeded.join(', ')}; the values from start stay in force (CITADEL_ENV ${prev.env}, CERTS_DIR ${prev.certsDir}); restart the agent to apply them`,
      );
    }
    this.deps.changed();
    return Promise.resolve();
  }

  /**
   * Stops renewing. Returns at once even when a round is stuck (a read that never completes):
   * the round is abandoned, whatever it still does is ignored.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.abort.abort(new Error('stopping'));
    await this.rotating?.catch(() => undefined);
  }

  status(): ComponentStatus {
    const now = this.deps.clock.now();
    const cur = this.current;
    const valid = cur !== undefined && cur.issuer === 'agent' && cur.notAfter > now;
    let summary = 'cert: none';
    if (cur) {
      summary = `cert valid until ${iso(cur.notAfter)}`;
      if (this.nextRenewal !== undefined)
        summary += `, next renewal in ${formatDuration(Math.max(0, this.nextRenewal - now))}`;
    }
    const problem = this.lastError
      ? `renewal failing since ${iso(this.failingSince ?? now)}: [${this.lastError.code}] ${this.lastError.message}`
      : undefined;
    return {
      ready: valid,
      summary,
      ...(problem ? { problem } : {}),
      details: {
        identity: this.identity,
        notBefore: cur ? iso(cur.notBefore) : undefined,
        notAfter: cur ? iso(cur.notAfter) : undefined,
        serial: cur?.serial,
        generation: cur?.generation,
        nextRenewal: this.nextRenewal !== undefined ? iso(this.nextRenewal) : undefined,
        rotations: this.rotations,
        failures: this.failures,
        renewing: this.rotating !== undefined,
      },
    };
  }

  /**
   * One CSR round: true when a new set is live. Failures are recorded, not thrown. The whole
   * round (key, credential, CA call, checks, write) is bounded by rotationDeadlineMs: past it
   * the round is abandoned and recorded as AGENT_E_CERT_TIMEOUT, and stop() cuts it at once.
   */
  rotate(): Promise<boolean> {
    if (!this.rotating) {
      const progress: Progress = { stage: 'key' };
      this.rotating = this.bounded(progress, (signal) => this.rotateOnce(signal, progress))
        .then(
          () => true,
          (e: unknown) => this.recordFailure(e, progress.stage),
        )
        .finally(() => {
          this.rotating = undefined;
        });
    }
    return this.rotating;
  }

  /**
   * Runs `fn` with a signal that aborts at the deadline (2 × CA_CALL_TIMEOUT + slack) or when
   * the component stops, and settles as soon as either happens, whether or not `fn` notices
   * (a read of a FIFO never returns). What `fn` does afterwards is ignored: it checks its
   * signal before each step and never writes once aborted.
   */
  private bounded<T>(progress: Progress, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ca = this.ca;
    const ms = rotationDeadlineMs(ca.callTimeoutMs);
    const attempt = new AbortController();
    const timer = this.deps.clock.setTimeout(() => {
      attempt.abort(this.timeoutError(progress.stage, ms, ca));
    }, ms);
    const onStop = (): void => {
      attempt.abort(this.abort.signal.reason);
    };
    if (this.abort.signal.aborted) onStop();
    else this.abort.signal.addEventListener('abort', onStop, { once: true });
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
      this.abort.signal.removeEventListener('abort', onStop);
    });
  }

  private timeoutError(stage: Stage, ms: number, ca: CaConfig): AgentError {
    const dir = this.opts.store.dir;
    const gcp = this.opts.source.kind === 'gcp';
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

  private recordFailure(e: unknown, stage: Stage): false {
    if (this.abort.signal.aborted) return false; // stopping: not a failure
    const err = toAgentError(e);
    this.failures++;
    this.lastError = err;
    this.lastStage = stage;
    this.failingSince ??= this.deps.clock.now();
    this.deps.changed();
    return false;
  }

  private async rotateOnce(signal: AbortSignal, progress: Progress): Promise<void> {
    const { store, source, connect } = this.opts;
    const ca = this.ca;
    const identity = this.identity;
    const t0 = performance.now();
    const timing: Record<string, number> = {};
    const lap = (name: string, since: number): number => {
      const now = performance.now();
      timing[name] = Math.round((now - since) * 10) / 10;
      return now;
    };
    progress.stage = 'key';
    // The key is kept until a certificate for it is live: retries do not make new keys.
    const pending = (this.nextKey ??= this.keygen());
    let key: WorkloadKey;
    try {
      key = await pending;
    } catch (e) {
      if (this.nextKey === pending) this.nextKey = undefined;
      throw e;
    }
    signal.throwIfAborted();
    let t = lap('keyWaitMs', t0);
    const csrPem = await createCsr(key, identity, ca.org);
    t = lap('csrMs', t);
    progress.stage = 'read';
    const set = await store.read();
    const bootstrap = await store.readBootstrap();
    signal.throwIfAborted();
    progress.stage = 'credential';
    const now = this.deps.clock.now();
    const credential = await source.credential(
      this.credentialInput(set),
      this.credentialInput(bootstrap),
      now,
      signal,
    );
    signal.throwIfAborted();
    t = lap('credentialMs', t);
    if (!set.rootPem)
      throw new AgentError(
        'AGENT_E_BOOTSTRAP_MISSING',
        `${path.join(store.dir, ROOT_FILE)} is missing`,
      );
    progress.stage = 'ca';
    this.log.info({ attempt: this.failures }, `Sending CSR (retrial #${this.failures}) ...`);
    const client = await connect(credential, set.rootPem, ca);
    let response: string[];
    try {
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
      now: this.deps.clock.now(),
      skewMs: CLOCK_SKEW_MS,
      ttlMs: ca.certTtlMs,
    });
    const at = renewAt(issued.notBefore, issued.notAfter, ca.renewRatio, this.deps.random);
    if (at <= this.deps.clock.now()) {
      throw new AgentError(
        'AGENT_E_CERT_VALIDITY',
        'got a certificate that should be renewed now (its lifetime is too short)',
      );
    }
    t = lap('checkMs', t);
    progress.stage = 'write';
    const rootPem = set.rootPem;
    const generation = await this.serialWrite(() => {
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
        },
      );
    });
    // Abandoned while writing: the set may be on disk; the next round replaces it.
    signal.throwIfAborted();
    lap('writeMs', t);
    lap('totalMs', t0);
    // Milliseconds since this process started (performance.timeOrigin), for start-up timing.
    timing.sinceProcessStartMs = Math.round(performance.now());
    this.current = {
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      serial: issued.serial,
      issuer: 'agent',
      generation,
    };
    this.rotations++;
    this.failures = 0;
    this.lastError = undefined;
    this.lastStage = undefined;
    this.failingSince = undefined;
    const wait = at - this.deps.clock.now();
    this.log.info(
      {
        serial: issued.serial,
        notAfter: iso(issued.notAfter),
        renewAt: iso(at),
        generation,
        timing,
      },
      `CSR is approved successfully. Will renew cert in ${formatDuration(wait)}`,
    );
    this.deps.events.emit('certs-rotated', {
      certsDir: store.dir,
      generation,
      notAfter: issued.notAfter,
    });
    // A reload changed the identity while this round ran: renew again, for the new one.
    this.schedule(identity === this.identity ? at : this.deps.clock.now());
    // Make the next key now, off the renewal's critical path.
    if (this.nextKey === pending) this.nextKey = this.keygen();
    this.deps.changed();
  }

  private serialWrite<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn);
    this.writing = run.catch(() => undefined);
    return run;
  }

  private schedule(at: number): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.nextRenewal = at;
    this.timer = this.deps.clock.setTimeout(
      () => void this.renewLoop(),
      Math.max(0, at - this.deps.clock.now()),
    );
  }

  /** A renewal attempt from the timer; on failure, schedules the retry or ends the agent. */
  private async renewLoop(): Promise<void> {
    if (this.stopped) return;
    if (await this.rotate()) return;
    if (this.stopped || !this.lastError) return;
    const err = this.lastError;
    const fatal = this.giveUp(err);
    if (fatal) {
      this.deps.fatal(fatal);
      return;
    }
    const delay = this.retryIn(err);
    this.logFailure(err, delay);
    this.schedule(this.deps.clock.now() + delay);
  }

  /**
   * How long to wait after this failure (pure policy: src/certs/policy.ts). A CA that asked to
   * slow down is honoured: never sooner than its retry hint, and an overloaded CA
   * (RESOURCE_EXHAUSTED) gets the slow backoff even once the certificate has expired.
   */
  private retryIn(err: AgentError): number {
    return retryDelay(
      this.failures - 1,
      this.deps.clock.now(),
      this.current?.notAfter,
      this.deps.random,
      {
        hintMs: err.retryAfterMs,
        overloaded: err.code === 'AGENT_E_CA_OVERLOADED',
      },
    );
  }

  /**
   * The one case the agent ends itself: the certificate has expired (or there is none) and the
   * CA refuses, rather than being away. A configuration problem found then ends it too, as
   * itself (exit 78). Anything else (a full disk, an unreadable file) is retried, and the log
   * and status name it: it is never reported as the CA refusing.
   */
  private giveUp(err: AgentError): AgentError | undefined {
    const cur = this.current;
    const expired = cur === undefined || cur.notAfter <= this.deps.clock.now();
    if (!expired || err.retryable) return undefined;
    if (CA_REFUSALS.has(err.code)) {
      return new AgentError(
        'AGENT_E_CERT_EXPIRED',
        `the workload certificate ${cur ? `expired at ${iso(cur.notAfter)}` : 'is missing'} and the CA refuses to issue one (${err.code}: ${err.message}); put a fresh bootstrap set (cert-chain.pem, key.pem, root-cert.pem) in ${this.opts.store.dir} and restart the agent`,
        { cause: err },
      );
    }
    if (err.exitCode === EXIT_CONFIG) return err;
    return undefined;
  }

  private logFailure(err: AgentError, delay: number): void {
    const now = this.deps.clock.now();
    const cur = this.current;
    const stage = this.lastStage ?? 'ca';
    const fields = {
      code: err.code,
      stage,
      attempt: this.failures,
      retryInMs: delay,
      ...(err.retryAfterMs !== undefined ? { retryHintMs: err.retryAfterMs } : {}),
      notAfter: cur ? iso(cur.notAfter) : undefined,
    };
    const what = err.code === 'AGENT_E_CERT_TIMEOUT' ? 'certificate renewal failed' : FAILED[stage];
    const text = `${what}: ${err.message}. Will retry in ${formatDuration(delay)}`;
    // Still valid: a warning. Expired (or about to within the retry): an error.
    if (cur && cur.notAfter > now + delay) this.log.warn(fields, text);
    else this.log.error(fields, text);
  }

  private checkPresent(set: StoredSet): void {
    const dir = this.opts.store.dir;
    const missing = [
      ...(this.opts.source.kind === 'onprem' && !set.chainPem ? [CHAIN_FILE] : []),
      ...(this.opts.source.kind === 'onprem' && !set.keyPem ? [KEY_FILE] : []),
      ...(!set.rootPem ? [ROOT_FILE] : []),
    ];
    if (missing.length > 0) {
      throw new AgentError(
        'AGENT_E_BOOTSTRAP_MISSING',
        `${missing.map((f) => path.join(dir, f)).join(', ')} missing; copy the bootstrap set (cert-chain.pem, key.pem, root-cert.pem from the istio.<service account> secret) to ${dir}`,
      );
    }
  }

  /** Parses the set on disk; a set that is there but broken is AGENT_E_BOOTSTRAP_INVALID. */
  private describe(set: StoredSet): Current | undefined {
    if (!set.chainPem) return undefined;
    const dir = this.opts.store.dir;
    try {
      const first = extractCertificates(set.chainPem)[0];
      if (!first) throw new Error('no PEM certificate in it');
      const leaf = new X509Certificate(first);
      if (set.keyPem && !leaf.checkPrivateKey(createPrivateKey(set.keyPem))) {
        throw new Error(`it does not match ${path.join(dir, KEY_FILE)}`);
      }
      return {
        notBefore: Date.parse(leaf.validFrom),
        notAfter: Date.parse(leaf.validTo),
        serial: leaf.serialNumber,
        issuer: set.meta.issuer,
        generation: set.generation,
      };
    } catch (e) {
      throw new AgentError(
        'AGENT_E_BOOTSTRAP_INVALID',
        `${path.join(dir, CHAIN_FILE)}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  private credentialInput(s: { keyPem?: string; chainPem?: string }): CredentialInput {
    let notAfter: number | undefined;
    const first = s.chainPem ? extractCertificates(s.chainPem)[0] : undefined;
    if (first) {
      try {
        notAfter = Date.parse(new X509Certificate(first).validTo);
      } catch {
        notAfter = undefined;
      }
    }
    return { keyPem: s.keyPem, chainPem: s.chainPem, notAfter };
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
