import * as path from 'node:path';
import type { Component, ComponentDeps, ComponentStatus } from '../component';
import type { ComponentFactory } from '../component';
import type { AgentConfig } from '../config/types';
import { Backoff } from '../lib/backoff';
import { toAgentError } from '../lib/errors';
import { withHostLock } from '../lib/lock';
import type { Exec } from '../lib/exec';
import type { Logger } from '../observe/logger';
import {
  applyDns,
  dnsSettings,
  offNote,
  planDns,
  preflightDns,
  probeHost,
  restoreSnapshot,
  snapshotDns,
  type DnsHost,
  type DnsSettings,
  type DnsSnapshot,
} from './apply';
import { detectDnsmasq, detectResolved } from './dnsmasq';

export {
  applyDns,
  cleanDns,
  dnsSettings,
  installedDnsmasq,
  offNote,
  planDns,
  probeHost,
  undoChange,
} from './apply';
export type { ApplyResult, CleanResult, DnsHost, DnsPlan, DnsSettings, HostFacts } from './apply';
export type { DnsmasqControl, DnsmasqDetection, ResolvedControl } from './dnsmasq';
export { renderKubedns, isManaged, MANAGED_MARK } from './render';

/** The real host under `root` ("/" for the daemon): dnsmasq and resolved found as installed there. */
export function systemHost(root: string, exec: Exec, now: () => number): DnsHost {
  const touchHost = root === '/';
  return {
    root,
    detectDnsmasq: () => detectDnsmasq({ root, exec, touchHost }),
    resolved: detectResolved({ root, exec, touchHost }),
    now,
  };
}

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
  private settings: DnsSettings;
  private names = 0;
  private resolverKind = '';
  private problem: string | undefined;
  private lastApplied: string | undefined;
  private running: Promise<unknown> = Promise.resolve();
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

  /** dnsmasq is installed, the record readable, the drop-in accepted by `dnsmasq --test`. */
  async preflight(): Promise<void> {
    await preflightDns(this.settings, this.host);
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

  /** One change at a time, under the state directory's lock (the CLI and capture take it too). */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const dir = path.join(this.host.root, this.settings.stateDir);
    const fn = (): Promise<T> => withHostLock(dir, 'istio-node-agent (dns)', work);
    const p = this.running.then(fn, fn);
    this.running = p.catch(() => undefined);
    return p;
  }

  private async apply(): Promise<void> {
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
  }
}

/** Builds the component for a host (tests pass a temporary root and their own dnsmasq control). */
export async function createDnsComponentFor(
  config: AgentConfig,
  deps: ComponentDeps,
  host: DnsHost,
): Promise<DnsComponent | undefined> {
  const settings = dnsSettings(config);
  if (!settings.dns.enabled) {
    const note = await offNote(settings, host.root).catch(() => undefined);
    if (note?.managed) deps.log.warn({ component: 'dns' }, note.message);
    else if (note) deps.log.info({ component: 'dns' }, note.message);
    return undefined;
  }
  return new DnsComponent(config, deps, host);
}

export const createDnsComponent: ComponentFactory = (config, deps) =>
  createDnsComponentFor(
    config,
    deps,
    systemHost('/', deps.exec, () => deps.clock.now()),
  );
