/**
 * Cluster DNS through dnsmasq (the component and the command `dns`). Where to read: settings.ts
 * and render.ts (the drop-in, pure), resolver.ts (pointing the resolver at dnsmasq, pure),
 * probe.ts (the host facts) and plan.ts (pure), apply.ts, journal.ts and state.ts (the change
 * record and undo), snapshot.ts (rollback of a failed start), clean.ts, notes.ts (DNS off),
 * host.ts and dnsmasq.ts (the host port), files.ts (a path's state, put back exactly); the
 * daemon's component is below.
 */
import * as path from 'node:path';
import type { Component, ComponentDeps, ComponentStatus, PreflightReport } from '../component';
import type { ComponentFactory } from '../component';
import type { AgentConfig } from '../config/types';
import { Backoff } from '../lib/backoff';
import { AgentError, toAgentError } from '../lib/errors';
import { withHostLock } from '../lib/lock';
import { SerialQueue } from '../lib/serial';
import type { Logger } from '../observe/index';
import { applyDns, preflightDns, type ApplyResult } from './apply';
import { systemHost, type DnsHost } from './host';
import { DnsOffNotice } from './notes';
import { planDns } from './plan';
import { probeHost } from './probe';
import { dnsSettings, type DnsSettings } from './settings';
import { restoreSnapshot, snapshotDns, type DnsSnapshot } from './snapshot';

export { applyDns } from './apply';
export type { ApplyResult } from './apply';
export { cleanDns } from './clean';
export type { CleanResult } from './clean';
export { installedDnsmasq, systemHost } from './host';
export type { DnsHost } from './host';
export { undoChange } from './journal';
export type { UndoOutcome } from './journal';
export { DnsOffNotice, offNote } from './notes';
export type { OffNote } from './notes';
export { planDns } from './plan';
export type { DnsPlan, DropInAction } from './plan';
export { probeHost } from './probe';
export type { HostFacts } from './probe';
export { dnsSettings } from './settings';
export type { DnsSettings } from './settings';
export type { DnsmasqControl, DnsmasqDetection, ResolvedControl } from './dnsmasq';
export { renderKubedns, kubednsRecords, isManaged, MANAGED_MARK } from './render';

/** Retries of a failed apply at start (dnsmasq restart failures are worth one more try). */
const START_ATTEMPTS = 3;
const START_BACKOFF = { initialMs: 1000, maxMs: 10_000, multiplier: 3, jitter: 0.2 };

/**
 * Cluster DNS: keeps `<ISTIO_DNSMASQ_DIR>/kubedns` equal to what the configuration says,
 * restarting dnsmasq only when it changes, and the host's resolver pointed at dnsmasq.
 * Stop leaves both in place (the host keeps resolving mesh names while the agent restarts or
 * upgrades); `istio-node-agent dns clean` undoes them. A failed start of the agent (rollback)
 * puts back what this start changed.
 */
export class DnsComponent implements Component {
  readonly name = 'dns';
  /** Needs no other component: starts alongside the certificates (src/start-order.ts). */
  readonly startsAfter: readonly string[] = [];
  private settings: DnsSettings;
  private names = 0;
  private resolverKind = '';
  private problem: string | undefined;
  private lastApplied: string | undefined;
  private readonly queue = new SerialQueue();
  /** While starting: the host as it was before this start's first change. */
  private starting = false;
  private snapshot: DnsSnapshot | undefined;
  private readonly log: Logger;

  constructor(
    config: AgentConfig,
    private readonly deps: ComponentDeps,
    private readonly host: DnsHost,
  ) {
    this.settings = dnsSettings(config);
    this.log = deps.log.child({ component: 'dns' });
  }

  /**
   * dnsmasq is installed, the record readable, the drop-in accepted by `dnsmasq --test`; on the
   * host's own files, root (AGENT_E_NOT_ROOT otherwise).
   */
  async preflight(): Promise<PreflightReport> {
    const uid = process.geteuid?.() ?? 0;
    if (this.host.root === '/' && uid !== 0) {
      throw new AgentError(
        'AGENT_E_NOT_ROOT',
        `cluster DNS writes ${this.settings.dns.dropInDir}/kubedns and the resolver's files and restarts dnsmasq, which needs root (this runs as uid ${uid}): run the agent as root (the systemd unit does), or unset the DNS variables`,
      );
    }
    const plan = await preflightDns(this.settings, this.host);
    return {
      summary: `${plan.dropInPath}: ${plan.dropIn} (${plan.names} names); resolver ${plan.resolver.kind}`,
      notes: plan.resolver.notes,
    };
  }

  async start(signal: AbortSignal): Promise<void> {
    this.starting = true;
    this.snapshot = undefined;
    try {
      await this.startApplying(signal);
    } finally {
      this.starting = false;
    }
  }

  private async startApplying(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(START_BACKOFF, this.deps.random);
    for (;;) {
      try {
        await this.serial(() => this.apply());
        return;
      } catch (e) {
        const err = toAgentError(e);
        if (!err.retryable || backoff.attempts + 1 >= START_ATTEMPTS || signal.aborted) throw err;
        const ms = backoff.next();
        this.log.warn(
          { code: err.code, err: err.message, retryInMs: ms },
          `DNS apply failed, retrying: ${err.message}`,
        );
        await this.deps.clock.sleep(ms, signal);
      }
    }
  }

  async reload(config: AgentConfig): Promise<void> {
    const next = dnsSettings(config);
    if (!next.dns.enabled) {
      this.log.warn(
        {},
        'DNS variables were removed; the drop-in and resolver change stay in place until `istio-node-agent dns clean`',
      );
      return;
    }
    this.settings = next;
    await this.serial(() => this.apply());
  }

  stop(): Promise<void> {
    // Deliberately nothing: see the class comment and docs/decisions.md.
    return Promise.resolve();
  }

  /** After a failed start: the drop-in, the resolver files and the record as before it. */
  async rollback(): Promise<void> {
    const snap = this.snapshot;
    this.snapshot = undefined;
    if (!snap) return;
    try {
      const restored = await this.serial(() =>
        restoreSnapshot(snap, this.settings, this.host, this.log),
      );
      this.log.info(
        { restored },
        restored.length > 0
          ? `the agent did not start: DNS changes of this start undone (${restored.join(', ')})`
          : 'the agent did not start: this start changed nothing in DNS',
      );
    } catch (e) {
      const err = toAgentError(e);
      this.log.error(
        { code: err.code, err: err.message },
        `could not undo the DNS changes of this start; run \`istio-node-agent dns clean\`: ${err.message}`,
      );
    }
  }

  status(): ComponentStatus {
    return {
      ready: this.lastApplied !== undefined,
      summary: `dns on (${this.names} names)`,
      ...(this.problem !== undefined ? { problem: this.problem } : {}),
      details: {
        dropIn: `${this.settings.dns.dropInDir}/kubedns`,
        resolver: this.resolverKind,
        lastApplied: this.lastApplied,
      },
    };
  }

  /** One change at a time, under the state directory's DNS lock (`dns apply|clean` take it too). */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const dir = path.join(this.host.root, this.settings.stateDir);
    return this.queue.run(() => withHostLock(dir, 'dns', 'istio-node-agent (dns)', work));
  }

  /** One apply, counted in the metrics (dns_applies_total by result, dnsmasq_restarts_total). */
  private async apply(): Promise<void> {
    const metrics = this.deps.metrics;
    try {
      const r = await this.applyOnce();
      const changed = r.dropIn !== 'unchanged' || r.edited.length > 0 || r.undone.length > 0;
      metrics?.inc('dns_applies_total', { result: changed ? 'changed' : 'unchanged' });
      if (r.restarted !== undefined) metrics?.inc('dnsmasq_restarts_total');
    } catch (e) {
      metrics?.inc('dns_applies_total', { result: 'failed' });
      throw e;
    }
  }

  private async applyOnce(): Promise<ApplyResult> {
    const facts = await probeHost(this.settings, this.host.root);
    const plan = planDns(this.settings, facts);
    if (this.starting) this.snapshot = await snapshotDns(plan, facts, this.host, this.snapshot);
    for (const n of plan.resolver.notes) this.log.warn({ resolver: plan.resolver.kind }, n);
    const r = await applyDns(this.settings, plan, facts, this.host, this.log);
    this.names = plan.names;
    this.resolverKind = plan.resolver.kind;
    this.problem = plan.resolver.unwired
      ? `resolver not pointed at dnsmasq: ${plan.resolver.reason}`
      : undefined;
    this.lastApplied = new Date(this.deps.clock.now()).toISOString();
    if (r.dropIn === 'unchanged' && r.edited.length === 0 && r.undone.length === 0) {
      this.log.debug({ names: plan.names }, 'DNS unchanged');
    } else {
      this.log.info(
        {
          names: plan.names,
          dropIn: r.dropIn,
          restarted: r.restarted,
          resolver: plan.resolver.kind,
          edited: r.edited,
        },
        `DNS applied: ${plan.names} names, resolver ${plan.resolver.kind} (${plan.resolver.reason})`,
      );
    }
    this.deps.changed();
    return r;
  }
}

/**
 * Builds the component for a host when DNS is on (tests pass a temporary root and their own
 * dnsmasq control); undefined when it is off. Pure: the host is first read in preflight.
 */
export function createDnsComponentFor(
  config: AgentConfig,
  deps: ComponentDeps,
  host: DnsHost,
): Promise<DnsComponent | undefined> {
  const settings = dnsSettings(config);
  return Promise.resolve(settings.dns.enabled ? new DnsComponent(config, deps, host) : undefined);
}

/**
 * The daemon's DNS: the component when DNS is on; when it is off, the notice that logs at
 * preflight what the drop-in directory still holds (it is not part of STATUS). Pure.
 */
export async function createDnsFor(
  config: AgentConfig,
  deps: ComponentDeps,
  host: DnsHost,
): Promise<Component> {
  return (
    (await createDnsComponentFor(config, deps, host)) ??
    new DnsOffNotice(dnsSettings(config), host, deps.log)
  );
}

export const createDnsComponent: ComponentFactory = (config, deps) =>
  createDnsFor(
    config,
    deps,
    systemHost('/', deps.exec, () => deps.clock.now()),
  );
