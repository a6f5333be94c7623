/**
 * The daemon's monitoring: the metric store components record into, the endpoint answering from
 * the agent, and prom-client loaded late. The endpoint listens before the agent starts (so
 * /healthz/live answers during start-up); prom-client is loaded once the first certificate is
 * on disk (`warm`), or by the first /metrics request if that comes first.
 */
import { isIP } from 'node:net';
import type { Agent } from '../agent';
import type { CoreConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import {
  loadPrometheus,
  MetricStore,
  startMonitorServer,
  type Logger,
  type MonitorServer,
  type GaugeName,
  type Prometheus,
} from '../observe/index';
import { VERSION } from '../version';

/** A loopback host: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export class Monitoring {
  readonly store = new MetricStore();
  private prom: Promise<Prometheus> | undefined;
  private server: MonitorServer | undefined;

  constructor(private readonly log: Logger) {
    this.store.set('build_info', 1, { version: VERSION, node_version: process.version });
  }

  /** `host:port` bound, once listening. */
  get address(): string | undefined {
    return this.server?.address;
  }

  /**
   * Listens on `addr` and answers from `agent`. A failure (the port in use) is logged as
   * AGENT_E_MONITORING and the agent goes on without the endpoint.
   */
  async listen(addr: NonNullable<CoreConfig['monitoring']>, agent: Agent): Promise<void> {
    const log = this.log.child({ component: 'monitoring' });
    const shown = addr.host.includes(':')
      ? `[${addr.host}]:${addr.port}`
      : `${addr.host}:${addr.port}`;
    if (!isLoopback(addr.host))
      log.warn(
        { address: shown },
        `the monitoring endpoint listens on ${shown}, not on loopback: anyone who can reach it sees the agent's status and metrics (nothing on it is authenticated)`,
      );
    try {
      this.server = await startMonitorServer(
        addr,
        {
          live: () => {
            const s = agent.status().state;
            return s !== 'stopped' && s !== 'failed';
          },
          readiness: () => {
            const s = agent.status();
            return {
              ready: s.ready,
              body: { ready: s.ready, state: s.state, notReady: s.notReady },
            };
          },
          status: () => agent.status(),
          metrics: async () => {
            this.scrapeTime(agent);
            const p = await this.prometheus();
            return { contentType: p.contentType, body: await p.render() };
          },
        },
        log,
      );
      log.info(
        { address: this.server.address },
        `monitoring on http://${this.server.address} (/healthz/live, /healthz/ready, /metrics, /debug/status)`,
      );
    } catch (e) {
      const err = new AgentError(
        'AGENT_E_MONITORING',
        `cannot listen on ${shown} (ISTIO_AGENT_MONITORING_ADDR): ${(e as Error).message}; the agent runs on without /metrics and /healthz: free the port or set another address, then restart`,
        { cause: e },
      );
      log.error({ code: err.code, address: shown }, err.toLine());
    }
  }

  /** Loads prom-client now, off the current turn (after the first certificate). */
  warm(): void {
    if (this.prom || !this.server) return;
    setImmediate(() => {
      void this.prometheus().catch(() => undefined);
    });
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  private prometheus(): Promise<Prometheus> {
    this.prom ??= loadPrometheus().then(
      (p) => {
        this.store.bind(p.metrics);
        return p;
      },
      (e: unknown) => {
        this.prom = undefined;
        throw e;
      },
    );
    return this.prom;
  }

  /**
   * The gauges read from the agent's status when scraped: readiness overall and per component,
   * the certificate's times (the status is their one source), the sidecar's epoch and crash loop.
   */
  private scrapeTime(agent: Agent): void {
    const s = agent.status();
    this.store.set('ready', s.ready ? 1 : 0);
    for (const [name, c] of Object.entries(s.components))
      this.store.set('component_ready', c.ready && !(name in s.notReady) ? 1 : 0, {
        component: name,
      });
    const num = (c: string, k: string): number | undefined => {
      const v = s.components[c]?.details?.[k];
      if (typeof v === 'number') return v;
      if (typeof v === 'boolean') return v ? 1 : 0;
      return typeof v === 'string' && /^\d{4}-/.test(v) ? Date.parse(v) / 1000 : undefined;
    };
    const gauges: [GaugeName, number | undefined][] = [
      ['cert_expiry_timestamp_seconds', num('certs', 'notAfter')],
      ['cert_not_before_timestamp_seconds', num('certs', 'notBefore')],
      ['cert_next_renewal_timestamp_seconds', num('certs', 'nextRenewal')],
      ['capture_rules', num('capture', 'rules')],
      ['sidecar_epoch', num('sidecar', 'epoch')],
      ['sidecar_crash_loop', num('sidecar', 'crashLoop')],
      ['sidecar_consecutive_crashes', num('sidecar', 'consecutiveCrashes')],
    ];
    for (const [name, v] of gauges) if (v !== undefined) this.store.set(name, v);
    const next = num('certs', 'nextRenewal');
    if (next !== undefined)
      this.store.set('cert_next_renewal_seconds', Math.max(0, next - Date.parse(s.at) / 1000));
  }
}
