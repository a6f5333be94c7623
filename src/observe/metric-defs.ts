/**
 * The agent's metrics, as data: name (without the `istio_node_agent_` prefix), type, help, labels
 * and histogram buckets. Components record into them through the `Metrics` interface
 * (metrics.ts) by these names; prom-client (prometheus.ts) is told about them only when the
 * endpoint first needs it. Names follow Prometheus conventions: the unit in the name, `_total`
 * for counters, timestamps in seconds since the epoch. docs/operations.md lists each one.
 */

export const METRIC_PREFIX = 'istio_node_agent_';

export interface Def {
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly help: string;
  readonly labels?: readonly string[];
  readonly buckets?: readonly number[];
}

export const METRIC_DEFS = {
  // certificates
  cert_expiry_timestamp_seconds: {
    type: 'gauge',
    help: 'Not-after of the workload certificate held (seconds since the epoch).',
  },
  cert_not_before_timestamp_seconds: {
    type: 'gauge',
    help: 'Not-before of the workload certificate held (seconds since the epoch).',
  },
  cert_next_renewal_timestamp_seconds: {
    type: 'gauge',
    help: 'When the next CSR is due: the renewal, or the retry after a failure (seconds since the epoch).',
  },
  cert_next_renewal_seconds: {
    type: 'gauge',
    help: 'Seconds until the next CSR (0 when due or under way), computed at scrape time.',
  },
  csr_total: {
    type: 'counter',
    help: "CSR rounds by result: issued; rejected (the CA's answer failed a check), ca_error (the CA refused or was unreachable), error (anything else: key, files, credential, deadline); code is the AGENT_E_* code.",
    labels: ['result', 'code'],
  },
  cert_renewal_duration_seconds: {
    type: 'histogram',
    help: 'Duration of CSR rounds (key wait, CSR, credential, CA call, checks, write), by result.',
    labels: ['result'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  },
  cert_bootstrap_fallbacks_total: {
    type: 'counter',
    help: "CSRs authenticated with the bootstrap set because the agent's own certificate had expired.",
  },
  // capture
  capture_rules: {
    type: 'gauge',
    help: 'Capture rules in force (0 when capture is off).',
  },
  capture_applies_total: {
    type: 'counter',
    help: 'Capture plans applied to the host, by operation (start, reload, repair).',
    labels: ['operation'],
  },
  capture_drift_repairs_total: {
    type: 'counter',
    help: 'Times the live capture rules had drifted from the plan and were repaired.',
  },
  capture_failures_total: {
    type: 'counter',
    help: 'Failed capture operations (start, reload, check, clean).',
    labels: ['operation'],
  },
  // dns
  dns_applies_total: {
    type: 'counter',
    help: 'DNS applies by result: changed (the drop-in or the resolver was written), unchanged, failed.',
    labels: ['result'],
  },
  dnsmasq_restarts_total: {
    type: 'counter',
    help: 'dnsmasq restarts for a changed drop-in.',
  },
  // sidecar
  sidecar_restarts_total: {
    type: 'counter',
    help: 'Sidecar (re)starts by cause: crash (after an exit), rotation (certificate rotation), config (reload).',
    labels: ['cause'],
  },
  sidecar_epoch: {
    type: 'gauge',
    help: "envoy's current restart epoch (pilot-agent mode: its envoy's).",
  },
  sidecar_crash_loop: {
    type: 'gauge',
    help: '1 while the sidecar is crash-looping (exits in a row without a healthy stretch).',
  },
  sidecar_consecutive_crashes: {
    type: 'gauge',
    help: 'Sidecar exits in a row without a healthy stretch in between.',
  },
  // the agent
  ready: {
    type: 'gauge',
    help: '1 when every component is ready (what /healthz/ready says), else 0.',
  },
  component_ready: {
    type: 'gauge',
    help: 'Per component: 1 when ready, else 0.',
    labels: ['component'],
  },
  startup_duration_seconds: {
    type: 'gauge',
    help: 'From the process start to the end of the agent start (READY=1).',
  },
  reloads_total: {
    type: 'counter',
    help: 'SIGHUP reloads by result: applied, or refused (a bad configuration file; the running one stays).',
    labels: ['result'],
  },
  build_info: {
    type: 'gauge',
    help: 'Always 1; the labels say which agent and Node.js run.',
    labels: ['version', 'node_version'],
  },
} as const satisfies Record<string, Def>;

export type MetricName = keyof typeof METRIC_DEFS;
type OfType<T extends Def['type']> = {
  [K in MetricName]: (typeof METRIC_DEFS)[K]['type'] extends T ? K : never;
}[MetricName];
export type CounterName = OfType<'counter'>;
export type GaugeName = OfType<'gauge'>;
export type HistogramName = OfType<'histogram'>;
export type Labels = Readonly<Record<string, string>>;

/** The metric's full name, `istio_node_agent_<name>`. */
export function fullName(name: MetricName): string {
  return METRIC_PREFIX + name;
}
