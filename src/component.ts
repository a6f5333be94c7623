import type { AgentConfig } from './config/types';
import type { Clock } from './lib/clock';
import type { Random } from './lib/backoff';
import type { Exec } from './lib/exec';
import type { Logger, Metrics } from './observe/index';
import type { EventEmitter } from 'node:events';

/** Events between components, e.g. the sidecar restarting envoy when the cert set rotates. */
export interface AgentEventMap {
  /** A new certificate set is live in `certsDir` (after the symlink flip). */
  'certs-rotated': [
    info: { readonly certsDir: string; readonly generation: string; readonly notAfter: number },
  ];
  /** The agent told systemd READY=1: work kept off the path to READY can start now. */
  'agent-ready': [];
}
export type AgentEvents = EventEmitter<AgentEventMap>;

/** What a component reports for `status`, STATUS= and the status file. */
export interface ComponentStatus {
  /** True when this component's part of readiness holds. */
  readonly ready: boolean;
  /** A short phrase for systemd's STATUS= line, e.g. "capture on", "cert valid until …". */
  readonly summary: string;
  /** What is wrong, when something is. */
  readonly problem?: string;
  /**
   * When `ready` stops holding by itself (ISO 8601), e.g. the certificate's not-after: whoever
   * reads this status later judges it at the time of reading (readiness.ts).
   */
  readonly validUntil?: string;
  /** Structured details for `status --json`. */
  readonly details?: Record<string, unknown>;
}

/** What a preflight found, for `check` to show: what start will do. */
export interface PreflightReport {
  /** One line, e.g. "pilot-agent as istio-proxy (998:998)", "16 rules, nft backend". */
  readonly summary: string;
  /** Warnings start would log about it (a fallback taken, a setting that does nothing). */
  readonly notes?: readonly string[];
}

/** Shared, injected dependencies of every component. */
export interface ComponentDeps {
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  readonly exec: Exec;
  readonly events: AgentEvents;
  /** Ends the agent: for a component that cannot go on (e.g. the certificate expired for good). */
  readonly fatal: (err: Error) => void;
  /** A component's status changed; the agent refreshes STATUS= and the status file. */
  readonly changed: () => void;
  /** Where the component records its metrics (observe/metric-defs.ts); absent = nowhere. */
  readonly metrics?: Metrics;
}

/**
 * One part of the agent (certificates, capture, dns, sidecar). The orchestrator runs every
 * component's `preflight` first, then starts components in order, awaiting each `start`, and
 * stops them in reverse order. Building a component does no I/O.
 */
export interface Component {
  readonly name: string;
  /** False: not part of STATUS= or the status file (a notice, e.g. DNS when it is off). */
  readonly inStatus?: boolean;
  /**
   * Components that must have started before this one starts, by name; the others may start
   * alongside it (src/start-order.ts). Undefined: every component before it in the registry.
   */
  readonly startsAfter?: readonly string[];
  /**
   * Checks, with I/O but without changing anything on the host, what `start` will need: users,
   * binaries, tools, files, the plan. Runs for every component before any component starts, so
   * a configuration that cannot work exits (78 for configuration errors) with the host as it
   * was. Rejects with an AgentError. May report what it found (`check` shows it).
   */
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- a report is optional: a preflight that has nothing to say resolves to nothing
  preflight?(signal: AbortSignal): Promise<PreflightReport | void>;
  /** Brings the component up. Resolves once it is ready; rejects with an AgentError. */
  start(signal: AbortSignal): Promise<void>;
  /** Applies a changed configuration (SIGHUP); applies only what changed. */
  reload?(config: AgentConfig): Promise<void>;
  /** Stops and undoes what must be undone on stop. Never rejects. */
  stop(): Promise<void>;
  /**
   * After a failed start of the agent (this component's or a later one's): stops and puts back
   * everything this start changed on the host, also what `stop` deliberately leaves in place.
   * Called for a component whose own start rejected too, so it copes with a partial start.
   * Never rejects. Without it the orchestrator calls `stop`.
   */
  rollback?(): Promise<void>;
  status(): ComponentStatus;
}

/**
 * Builds one component from the validated configuration. Pure: it does no I/O (lookups, probes
 * and file reads belong in `preflight`/`start`). Returns undefined when the component is off in
 * this configuration. Each component's folder exports its factory from its index.ts; the
 * registry (components.ts) lists them in start order.
 */
export type ComponentFactory = (
  config: AgentConfig,
  deps: ComponentDeps,
) => Promise<Component | undefined>;
