/**
 * prom-client behind our `Metrics` interface. Loaded with `import()` (esbuild keeps the module's
 * initialiser lazy), so the daemon parses and runs it only when the monitoring endpoint first
 * needs it: after the first certificate is on disk, or at the first scrape before that.
 */
import type { Metrics } from './metrics';
import { fullName, METRIC_DEFS, type Def, type MetricName } from './metric-defs';

interface Base {
  name: string;
  help: string;
  labelNames: string[];
  registers: import('prom-client').Registry[];
}

export interface Prometheus {
  /** Records into prom-client's registry. */
  readonly metrics: Metrics;
  /** The exposition text of every metric, ours and the process's. */
  render(): Promise<string>;
  readonly contentType: string;
}

export async function loadPrometheus(): Promise<Prometheus> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  // The process's own (CPU, resident memory, open fds, event loop lag, heap), under their
  // standard names (process_*, nodejs_*).
  prom.collectDefaultMetrics({ register: registry });
  // Each metric is made when first recorded: one that a component never records (capture when
  // capture is off) is absent, rather than a misleading 0.
  const made = new Map<MetricName, unknown>();
  const make = <T>(name: MetricName, create: (base: Base) => T): T => {
    let m = made.get(name) as T | undefined;
    if (!m) {
      const def: Def = METRIC_DEFS[name];
      m = create({
        name: fullName(name),
        help: def.help,
        labelNames: [...(def.labels ?? [])],
        registers: [registry],
      });
      made.set(name, m);
    }
    return m;
  };
  const counter = (n: MetricName) => make(n, (b) => new prom.Counter(b));
  const gauge = (n: MetricName) => make(n, (b) => new prom.Gauge(b));
  const histogram = (n: MetricName) =>
    make(n, (b) => new prom.Histogram({ ...b, buckets: [...(METRIC_DEFS[n] as Def).buckets!] }));
  return {
    metrics: {
      inc: (name, labels, by = 1) => {
        counter(name).inc(labels ?? {}, by);
      },
      set: (name, value, labels) => {
        gauge(name).set(labels ?? {}, value);
      },
      observe: (name, value, labels) => {
        histogram(name).observe(labels ?? {}, value);
      },
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
