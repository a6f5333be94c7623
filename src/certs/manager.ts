import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Component, ComponentDeps, ComponentStatus } from '../component';
import type { CaConfig } from '../config/types';
import { AgentError, toAgentError } from '../lib/errors';
import type { TimerHandle } from '../lib/clock';
import type { Logger } from '../observe/logger';
import { createCsr } from './csr';
import { generateWorkloadKey, type WorkloadKey } from './keys';
import { splitCertificates, joinPem } from './pem';
import { formatDuration, renewAt, retryDelay } from './policy';
import { CHAIN_FILE, KEY_FILE, ROOT_FILE, type CertStore, type StoredSet } from './store';
import type { CaConnector, CredentialInput, IdentitySource } from './types';
import { checkIssued } from './validate';
import * as path from 'node:path';

/** Allowed clock skew between this host and the CA when checking notBefore. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export interface CertManagerOptions {
  readonly ca: CaConfig;
  readonly store: CertStore;
  readonly connect: CaConnector;
  readonly source: IdentitySource;
  /** Makes keys; injectable so a test can count or slow it. */
  readonly keygen?: () => Promise<WorkloadKey>;
  /** Loads what the first CSR needs (the gRPC stack) while the key is being made. */
  readonly warmup?: () => Promise<unknown>;
}

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
  private identity = '';
  private current: Current | undefined;
  private nextRenewal: number | undefined;
  private timer: TimerHandle | undefined;
  private failures = 0;
  private lastError: AgentError | undefined;
  private failingSince: number | undefined;
  private nextKey: Promise<WorkloadKey> | undefined;
  private rotating: Promise<boolean> | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  private rotations = 0;

  constructor(
    private readonly deps: ComponentDeps,
    private readonly opts: CertManagerOptions,
  ) {
    this.log = deps.log.child({ component: 'certs' });
    // The first key is made in the thread pool while the rest of the agent is built and the
    // files are read; the gRPC stack loads meanwhile.
    this.nextKey = this.keygen();
    this.nextKey.catch(() => undefined);
    this.opts.warmup?.().catch(() => undefined);
  }

  private keygen(): Promise<WorkloadKey> {
    return this.opts.keygen
      ? this.opts.keygen()
      : generateWorkloadKey(this.opts.ca.keyAlgorithm, this.opts.ca.rsaKeySize);
  }

  async start(signal: AbortSignal): Promise<void> {
    const onAbort = (): void => {
      this.abort.abort(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const { store, ca, source } = this.opts;
    this.log.info(
      { certsDir: store.dir, env: source.kind, api: ca.api, ca: ca.address },
      'Node Agent starts successfully.',
    );
    const took = await store.prepare();
    if (took)
      this.log.info(
        { certsDir: store.dir },
        'took over the certificate files in the directory as the bootstrap set',
      );
    const set = await store.read();
    this.checkPresent(set);
    this.current = this.describe(set);
    this.identity = ca.identity ?? (await source.defaultIdentity({ chainPem: set.chainPem }));
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
    for (;;) {
      if (this.abort.signal.aborted)
        throw new AgentError('AGENT_E_INTERNAL', 'stopped before the first certificate was issued');
      if (await this.rotate()) return;
      const err = this.lastError!;
      const fatal = this.giveUp(err);
      if (fatal) throw fatal;
      const delay = retryDelay(
        this.failures - 1,
        this.deps.clock.now(),
        this.current?.notAfter,
        this.deps.random,
      );
      this.logFailure(err, delay);
      await this.deps.clock.sleep(delay, this.abort.signal).catch(() => undefined);
    }
  }

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
      },
    };
  }

  /** One CSR round: true when a new set is live. Failures are recorded, not thrown. */
  rotate(): Promise<boolean> {
    if (!this.rotating) {
      this.rotating = this.rotateOnce().finally(() => {
        this.rotating = undefined;
      });
    }
    return this.rotating;
  }

  private async rotateOnce(): Promise<boolean> {
    const { store, ca, source, connect } = this.opts;
    const t0 = performance.now();
    const timing: Record<string, number> = {};
    const lap = (name: string, since: number): number => {
      const now = performance.now();
      timing[name] = Math.round((now - since) * 10) / 10;
      return now;
    };
    try {
      const key = await (this.nextKey ?? this.keygen());
      this.nextKey = undefined;
      let t = lap('keyWaitMs', t0);
      const csrPem = await createCsr(key, this.identity, ca.org);
      t = lap('csrMs', t);
      const set = await store.read();
      const bootstrap = await store.readBootstrap();
      const now = this.deps.clock.now();
      const credential = await source.credential(
        this.credentialInput(set),
        this.credentialInput(bootstrap),
        now,
        this.abort.signal,
      );
      t = lap('credentialMs', t);
      if (!set.rootPem)
        throw new AgentError(
          'AGENT_E_BOOTSTRAP_MISSING',
          `${path.join(store.dir, ROOT_FILE)} is missing`,
        );
      this.log.info({ attempt: this.failures }, `Sending CSR (retrial #${this.failures}) ...`);
      const client = await connect(credential, set.rootPem);
      let response: string[];
      try {
        response = await client.sign(
          { csrPem, identity: this.identity, ttlMs: ca.certTtlMs },
          this.abort.signal,
        );
      } finally {
        client.close();
      }
      t = lap('rpcMs', t);
      const issued = checkIssued({
        response,
        key: key.object,
        identity: this.identity,
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
      if (this.stopped) return false;
      t = lap('checkMs', t);
      const generation = await store.write(
        { keyPem: key.pem, chainPem: joinPem(issued.chain), rootPem: set.rootPem },
        {
          issuer: 'agent',
          identity: this.identity,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          serial: issued.serial,
        },
      );
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
      this.schedule(at);
      // Make the next key now, off the renewal's critical path.
      this.nextKey = this.keygen();
      this.nextKey.catch(() => undefined);
      this.deps.changed();
      return true;
    } catch (e) {
      const err = toAgentError(e);
      this.failures++;
      this.lastError = err;
      this.failingSince ??= this.deps.clock.now();
      this.deps.changed();
      return false;
    }
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
    if (this.stopped) return;
    const err = this.lastError!;
    const now = this.deps.clock.now();
    const fatal = this.giveUp(err);
    if (fatal) {
      this.deps.fatal(fatal);
      return;
    }
    const delay = retryDelay(this.failures - 1, now, this.current?.notAfter, this.deps.random);
    this.logFailure(err, delay);
    this.nextRenewal = now + delay;
    this.timer = this.deps.clock.setTimeout(() => void this.renewLoop(), delay);
  }

  /**
   * The one case the agent ends itself: the certificate has expired (or there is none) and the
   * CA refuses, rather than being away. While the certificate is valid it never gives up.
   */
  private giveUp(err: AgentError): AgentError | undefined {
    const cur = this.current;
    const expired = cur === undefined || cur.notAfter <= this.deps.clock.now();
    if (!expired || err.retryable) return undefined;
    return new AgentError(
      'AGENT_E_CERT_EXPIRED',
      `the workload certificate ${cur ? `expired at ${iso(cur.notAfter)}` : 'is missing'} and the CA refuses to issue one (${err.code}: ${err.message}); put a fresh bootstrap set (cert-chain.pem, key.pem, root-cert.pem) in ${this.opts.store.dir} and restart the agent`,
      { cause: err },
    );
  }

  private logFailure(err: AgentError, delay: number): void {
    const now = this.deps.clock.now();
    const cur = this.current;
    const fields = {
      code: err.code,
      attempt: this.failures,
      retryInMs: delay,
      notAfter: cur ? iso(cur.notAfter) : undefined,
    };
    const text = `CSR signing failed: ${err.message}. Will retry in ${formatDuration(delay)}`;
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
      const first = splitCertificates(set.chainPem)[0];
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
    const first = s.chainPem ? splitCertificates(s.chainPem)[0] : undefined;
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
