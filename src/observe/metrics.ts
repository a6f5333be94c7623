/**
 * What components record metrics into: a small interface of ours, so no component imports
 * prom-client and nothing on the path to the first certificate loads it. `MetricStore` keeps
 * what is recorded (counters summed, gauges' last values, a bounded list of observations) until
 * prom-client is bound (prometheus.ts, loaded after the first certificate or at the first
 * scrape), hands it over, and from then on forwards each call.
 */
import type { CounterName, GaugeName, HistogramName, Labels } from './metric-defs';

export interface Metrics {
  inc(name: CounterName, labels?: Labels, by?: number): void;
  set(name: GaugeName, value: number, labels?: Labels): void;
  observe(name: HistogramName, value: number, labels?: Labels): void;
}

/** Records nothing: monitoring is off, or a test does not look. */
export const NO_METRICS: Metrics = {
  inc: () => undefined,
  set: () => undefined,
  observe: () => undefined,
};

/** Observations kept per histogram before prom-client is bound; older ones beyond are dropped. */
export const PENDING_OBSERVATIONS = 256;

/** One label set as a map key: the labels sorted, so `{a,b}` and `{b,a}` are one series. */
function key(labels: Labels | undefined): string {
  if (!labels) return '';
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

interface Series<V> {
  readonly labels: Labels | undefined;
  value: V;
}

/** The recorded values, in the form they are handed to a sink. */
export interface Recorded {
  readonly counters: readonly { name: CounterName; labels?: Labels; value: number }[];
  readonly gauges: readonly { name: GaugeName; labels?: Labels; value: number }[];
  readonly observations: readonly { name: HistogramName; labels?: Labels; value: number }[];
}

export class MetricStore implements Metrics {
  private readonly counters = new Map<CounterName, Map<string, Series<number>>>();
  private readonly gauges = new Map<GaugeName, Map<string, Series<number>>>();
  private readonly observations = new Map<HistogramName, Series<number>[]>();
  private sink: Metrics | undefined;

  inc(name: CounterName, labels?: Labels, by = 1): void {
    if (this.sink) {
      this.sink.inc(name, labels, by);
      return;
    }
    const m = this.series(this.counters, name);
    const k = key(labels);
    const s = m.get(k);
    if (s) s.value += by;
    else m.set(k, { labels, value: by });
  }

  set(name: GaugeName, value: number, labels?: Labels): void {
    if (this.sink) {
      this.sink.set(name, value, labels);
      return;
    }
    this.series(this.gauges, name).set(key(labels), { labels, value });
  }

  observe(name: HistogramName, value: number, labels?: Labels): void {
    if (this.sink) {
      this.sink.observe(name, value, labels);
      return;
    }
    let list = this.observations.get(name);
    if (!list) this.observations.set(name, (list = []));
    list.push({ labels, value });
    if (list.length > PENDING_OBSERVATIONS) list.shift();
  }

  /** What was recorded so far (before a sink was bound). */
  recorded(): Recorded {
    const flat = <N>(m: Map<N, Map<string, Series<number>>>) =>
      [...m].flatMap(([name, series]) =>
        [...series.values()].map((s) => ({
          name,
          value: s.value,
          ...(s.labels ? { labels: s.labels } : {}),
        })),
      );
    return {
      counters: flat(this.counters),
      gauges: flat(this.gauges),
      observations: [...this.observations].flatMap(([name, list]) =>
        list.map((s) => ({ name, value: s.value, ...(s.labels ? { labels: s.labels } : {}) })),
      ),
    };
  }

  /** Hands what was recorded to `sink`, then forwards every call to it. */
  bind(sink: Metrics): void {
    if (this.sink) return;
    const r = this.recorded();
    for (const c of r.counters) sink.inc(c.name, c.labels, c.value);
    for (const g of r.gauges) sink.set(g.name, g.value, g.labels);
    for (const o of r.observations) sink.observe(o.name, o.value, o.labels);
    this.counters.clear();
    this.gauges.clear();
    this.observations.clear();
    this.sink = sink;
  }

  private series<N>(m: Map<N, Map<string, Series<number>>>, name: N): Map<string, Series<number>> {
    let s = m.get(name);
    if (!s) {
      s = new Map<string, Series<number>>();
      m.set(name, s);
    }
    return s;
  }
}
