import type { Component, ComponentDeps, ComponentStatus } from '../component';
import type { AgentConfig, CaConfig } from '../config/types';
import type { TimerHandle } from '../lib/clock';
import { formatDuration, isoTime as iso } from '../lib/duration';
import { AgentError, toAgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import { afterFailure, Failures } from './failures';
import { checkPresent, describeSet, type HeldCert } from './inspect';
import { CertMetrics } from './metrics';
import { startKey, type WorkloadKey } from './keys';
import {
  renewalAfterRatioChange,
  rotationDeadlineMs,
  settingsChange,
  startPlan,
  type Schedule,
} from './policy';
import { csrRound, timeoutError, withDeadline, type Progress, type RoundResult } from './round';
import { logSettingsChange } from './reload';
import { certStatus } from './status';
import type { StoredSet } from './store';
import type { CertManagerOptions } from './types';

export type { CertManagerOptions, CertStoreLike } from './types';

/**
 * The certificate component: obtains the workload certificate by CSR and keeps it renewed.
 * Decisions (when to renew, how long to wait after a failure, what a reload changes, when to
 * give up) are the pure functions in policy.ts; one CSR round is round.ts, the failure
 * bookkeeping failures.ts, the status status.ts. This class runs them: start, the renewal
 * timer, reload, stop.
 */
export class CertManager implements Component {
  readonly name = 'certs';
  private readonly log: Logger;
  private readonly metrics: CertMetrics;
  /** The CA settings in force; a reload replaces them for the next CSR. */
  private ca: CaConfig;
  private identity = '';
  private current: HeldCert | undefined;
  private nextRenewal: number | undefined;
  private timer: TimerHandle | undefined;
  /** Whether the timer is the timely renewal of the certificate held (policy.ts's Schedule). */
  private timerSchedule: Schedule = 'off';
  /** The failures since the last certificate (or the identity) was obtained. */
  private readonly failures = new Failures();
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
    this.metrics = new CertMetrics(deps.metrics);
    this.ca = opts.ca;
    // The first key is made in the thread pool while the rest of the agent is built and the
    // files are read; the gRPC stack loads meanwhile.
    this.nextKey = opts.firstKey ?? this.keygen();
    this.opts.warmup?.().catch(() => undefined);
  }

  /** Starts making a key with the settings in force (in the thread pool). */
  private keygen(): Promise<WorkloadKey> {
    return startKey(this.ca.keyAlgorithm, this.ca.rsaKeySize, this.opts.keygen);
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
    checkPresent(set, source.kind, store.dir);
    this.current = describeSet(set, store.dir);
    this.identity = ca.identity ?? (await this.resolveIdentity(set));
    this.log.info({ identity: this.identity }, `workload identity is ${this.identity}`);

    const now = this.deps.clock.now();
    const cur = this.current;
    const ours = set.meta.issuer === 'agent' && set.meta.identity === this.identity;
    const plan = startPlan(
      cur && { ...cur, ours, share: cur.renewShare },
      now,
      ca.renewRatio,
      ca.firstCsrJitterMs,
      this.deps.random,
    );
    if (plan.keep) {
      this.log.info(
        { notAfter: iso(cur!.notAfter), serial: cur!.serial },
        `keeping the certificate issued earlier (valid until ${iso(cur!.notAfter)})`,
      );
      this.current = { ...cur!, renewShare: plan.share };
      this.schedule(plan.renewAt, 'on');
      return;
    }
    // First start (bootstrap set), another identity, or due: get a certificate before ready.
    // While the certificate held is valid, spread the first CSR a little, so a fleet started
    // at once does not reach the CA at once; without a valid one, at once.
    if (plan.delayMs > 0) {
      const until = iso(plan.heldUntil!);
      this.log.info(
        { delayMs: plan.delayMs, notAfter: until },
        `first CSR in ${formatDuration(plan.delayMs)} (spread over CERT_FIRST_CSR_JITTER; the certificate held is valid until ${until})`,
      );
      this.nextRenewal = now + plan.delayMs;
      await this.deps.clock.sleep(plan.delayMs, this.abort.signal).catch(() => undefined);
    }
    for (;;) {
      if (this.abort.signal.aborted)
        throw new AgentError('AGENT_E_INTERNAL', 'stopped before the first certificate was issued');
      if (await this.rotate()) return;
      if (this.abort.signal.aborted) continue;
      const step = this.afterFailure(this.failures.lastError!);
      if ('fatal' in step) throw step.fatal;
      await this.retryAfter(step.delay);
    }
  }

  /** Before anything changes (agent preflight): the files start needs are there. */
  async preflight(): Promise<void> {
    await this.opts.store.check();
    checkPresent(await this.opts.store.read(), this.opts.source.kind, this.opts.store.dir);
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
        if (this.failures.lastStage === 'identity') this.failures.clear();
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
        const step = this.afterFailure(err);
        if ('fatal' in step) throw step.fatal; // not for a retryable failure: see policy.ts
        await this.retryAfter(step.delay);
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
    const change = settingsChange(prev, next);
    const { applied } = change;
    if (applied.length === 0 && change.restartNeeded.length === 0) {
      this.log.debug('certificate settings unchanged by reload');
      return Promise.resolve();
    }
    this.ca = change.next;
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
      if (idle) this.schedule(this.deps.clock.now(), 'off');
    } else if (applied.includes('CERT_RENEW_RATIO') && idle && !this.failures.lastError) {
      const { clock, random } = this.deps;
      const cur = this.current;
      const r = cur && renewalAfterRatioChange(cur, this.ca.renewRatio, clock.now(), random);
      if (r) {
        this.current = { ...cur, renewShare: r.share };
        this.schedule(r.at, 'on');
      }
    }
    logSettingsChange(this.log, change, prev, this.nextRenewal, this.deps.clock.now());
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
    return certStatus({
      now: this.deps.clock.now(),
      identity: this.identity,
      current: this.current,
      nextRenewal: this.nextRenewal,
      rotations: this.rotations,
      failures: this.failures.count,
      lastError: this.failures.lastError,
      failingSince: this.failures.since,
      renewing: this.rotating !== undefined,
    });
  }

  /**
   * One CSR round: true when a new set is live. Failures are recorded, not thrown. The whole
   * round (key, credential, CA call, checks, write) is bounded by rotationDeadlineMs: past it
   * the round is abandoned and recorded as AGENT_E_CERT_TIMEOUT, and stop() cuts it at once.
   */
  rotate(): Promise<boolean> {
    if (!this.rotating) {
      const progress: Progress = { stage: 'key' };
      const round = this.bounded(progress, (signal) => this.rotateOnce(signal, progress));
      this.rotating = this.metrics
        .round(this.deps.clock, progress, this.abort.signal, round)
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
   * Runs `fn` bounded by the round's deadline (2 × CA_CALL_TIMEOUT + slack, round.ts's
   * withDeadline), cut at once when the component stops.
   */
  private bounded<T>(progress: Progress, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ca = this.ca;
    const ms = rotationDeadlineMs(ca.callTimeoutMs);
    const { store, source } = this.opts;
    return withDeadline(
      this.deps.clock,
      this.abort.signal,
      ms,
      () => timeoutError(progress.stage, ms, ca, store.dir, source.kind),
      fn,
    );
  }

  private recordFailure(e: unknown, stage: Progress['stage']): false {
    if (this.abort.signal.aborted) return false; // stopping: not a failure
    this.failures.record(toAgentError(e), stage, this.deps.clock.now());
    this.deps.changed();
    return false;
  }

  /** One round (round.ts) with the settings in force, then the new certificate taken up. */
  private async rotateOnce(signal: AbortSignal, progress: Progress): Promise<void> {
    const identity = this.identity;
    // The key is kept until a certificate for it is live: retries do not make new keys.
    const pending = (this.nextKey ??= this.keygen());
    const result = await csrRound(
      {
        ca: this.ca,
        identity,
        store: this.opts.store,
        source: this.opts.source,
        connect: this.opts.connect,
        key: pending,
        keyFailed: () => {
          if (this.nextKey === pending) this.nextKey = undefined;
        },
        attempt: this.failures.count,
        // Off schedule (a start, a retry, a new identity): spread widely (policy.ts).
        schedule: this.failures.count === 0 ? this.timerSchedule : 'off',
        clock: this.deps.clock,
        random: this.deps.random,
        log: this.log,
        bootstrapFallback: this.metrics.bootstrapFallback,
        serialWrite: (fn) => this.serialWrite(fn),
      },
      signal,
      progress,
    );
    this.issued(result, identity);
    // Make the next key now, off the renewal's critical path.
    if (this.nextKey === pending) this.nextKey = this.keygen();
    this.deps.changed();
  }

  /** A new set is live: it is the current one; log it, tell the sidecar, schedule renewal. */
  private issued(r: RoundResult, identity: string): void {
    const { issued, generation, renewAt: at } = r;
    this.current = {
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      serial: issued.serial,
      issuer: 'agent',
      generation,
      renewShare: r.renewShare,
    };
    this.rotations++;
    this.failures.clear();
    const wait = at - this.deps.clock.now();
    this.log.debug({ serial: issued.serial, timing: r.timing }, 'CSR round timing');
    this.log.info(
      {
        serial: issued.serial,
        notAfter: iso(issued.notAfter),
        renewAt: iso(at),
        generation,
      },
      `CSR is approved successfully. Will renew cert in ${formatDuration(wait)}`,
    );
    this.deps.events.emit('certs-rotated', {
      certsDir: this.opts.store.dir,
      generation,
      notAfter: issued.notAfter,
    });
    // A reload changed the identity while this round ran: renew again, for the new one.
    if (identity === this.identity) this.schedule(at, 'on');
    else this.schedule(this.deps.clock.now(), 'off');
  }

  private serialWrite<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn);
    this.writing = run.catch(() => undefined);
    return run;
  }

  private schedule(at: number, schedule: Schedule): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.nextRenewal = at;
    this.timerSchedule = schedule;
    this.timer = this.deps.clock.setTimeout(
      () => void this.renewLoop(),
      Math.max(0, at - this.deps.clock.now()),
    );
  }

  /** A renewal attempt from the timer; on failure, schedules the retry or ends the agent. */
  private async renewLoop(): Promise<void> {
    if (this.stopped) return;
    if (await this.rotate()) return;
    if (this.stopped || !this.failures.lastError) return;
    const step = this.afterFailure(this.failures.lastError);
    if ('fatal' in step) this.deps.fatal(step.fatal);
    else this.schedule(this.deps.clock.now() + step.delay, 'off');
  }

  /** After a failure (failures.ts): the error that ends the agent, or the wait, logged. */
  private afterFailure(err: AgentError): { fatal: AgentError } | { delay: number } {
    const { clock, random } = this.deps;
    const at = { now: clock.now(), certsDir: this.opts.store.dir, random };
    return afterFailure(err, this.failures, this.current, at, this.log);
  }

  /** During start: waits until the retry (or stop). */
  private async retryAfter(delay: number): Promise<void> {
    this.nextRenewal = this.deps.clock.now() + delay;
    await this.deps.clock.sleep(delay, this.abort.signal).catch(() => undefined);
  }
}
