/**
 * What the certificate component records for /metrics (observe/metric-defs.ts has the names):
 * the CSR rounds and bootstrap fallbacks. The certificate's times are read from its status when
 * scraped.
 */
import type { Clock } from '../lib/clock';
import { toAgentError, type AgentError } from '../lib/errors';
import { NO_METRICS, type Metrics } from '../observe/index';
import type { Progress, Stage } from './round';

/** A failed round, for the metrics: the CA's answer refused by a check, the CA's error, or other. */
export function csrResult(err: AgentError, stage: Stage): 'rejected' | 'ca_error' | 'error' {
  if (stage === 'check') return 'rejected';
  if (/^AGENT_E_CA_/.test(err.code)) return 'ca_error';
  return 'error';
}

export class CertMetrics {
  constructor(private readonly m: Metrics = NO_METRICS) {}

  /**
   * Counts a CSR round by its outcome and times it; `round` is returned as it is. A round cut by
   * `stop` is not counted.
   */
  round<T>(clock: Clock, progress: Progress, stop: AbortSignal, round: Promise<T>): Promise<T> {
    const t0 = clock.now();
    const took = (): number => (clock.now() - t0) / 1000;
    round.then(
      () => {
        this.m.inc('csr_total', { result: 'issued', code: '' });
        this.m.observe('cert_renewal_duration_seconds', took(), { result: 'issued' });
      },
      (e: unknown) => {
        if (stop.aborted) return;
        const err = toAgentError(e);
        this.m.inc('csr_total', { result: csrResult(err, progress.stage), code: err.code });
        this.m.observe('cert_renewal_duration_seconds', took(), { result: 'failed' });
      },
    );
    return round;
  }

  /** A CSR went out with the bootstrap set as its credential: our own certificate had expired. */
  readonly bootstrapFallback = (): void => {
    this.m.inc('cert_bootstrap_fallbacks_total');
  };
}
