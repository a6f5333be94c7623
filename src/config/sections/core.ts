import type { RawEnv } from '../raw';
import type { CoreConfig } from '../types';

export function parseCore(raw: RawEnv): CoreConfig {
  return {
    stateDir: raw.str('ISTIO_AGENT_STATE_DIR', '/var/lib/istio/agent'),
    logLevel: raw.oneOf(
      'ISTIO_AGENT_LOG_LEVEL',
      ['trace', 'debug', 'info', 'warn', 'error'] as const,
      'info',
      {
        caseInsensitive: true,
      },
    ),
    systemNamespace: dnsLabel(raw, 'ISTIO_SYSTEM_NAMESPACE', 'istio-system'),
  };
}

/** A Kubernetes namespace-like name (RFC 1123 label). */
export function dnsLabel(raw: RawEnv, key: string, def: string): string {
  const v = raw.str(key, def);
  if (/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) return v;
  raw.report(key, `"${v}" is not a valid DNS label (lowercase letters, digits, '-')`);
  return def;
}
