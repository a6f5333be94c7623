import { parseHostPort } from '../../lib/host-port';
import type { RawEnv } from '../raw';
import type { CoreConfig } from '../types';

/** ISTIO_AGENT_STATE_DIR's default. */
export const DEFAULT_STATE_DIR = '/var/lib/istio/agent';

export function parseCore(raw: RawEnv): CoreConfig {
  return {
    stateDir: raw.str('ISTIO_AGENT_STATE_DIR', DEFAULT_STATE_DIR),
    logLevel: raw.oneOf(
      'ISTIO_AGENT_LOG_LEVEL',
      ['trace', 'debug', 'info', 'warn', 'error'] as const,
      'info',
      {
        caseInsensitive: true,
      },
    ),
    systemNamespace: dnsLabel(raw, 'ISTIO_SYSTEM_NAMESPACE', 'istio-system'),
    monitoring: monitoringAddr(raw),
  };
}

/** The default monitoring address: the port Istio's later node agent served its metrics on. */
export const DEFAULT_MONITORING_ADDR = '127.0.0.1:15014';

/** ISTIO_AGENT_MONITORING_ADDR: `host:port` (`[v6]:port`), port 0 for any free port, or `off`. */
function monitoringAddr(raw: RawEnv): CoreConfig['monitoring'] {
  const text = raw.str('ISTIO_AGENT_MONITORING_ADDR', DEFAULT_MONITORING_ADDR);
  if (text.toLowerCase() === 'off') return undefined;
  const r = parseHostPort(text, { minPort: 0 });
  if (!r.ok)
    raw.fail(
      'ISTIO_AGENT_MONITORING_ADDR',
      `"${text}" is not host:port (e.g. ${DEFAULT_MONITORING_ADDR}, [::1]:15014) or off`,
    );
  return { host: r.host, port: r.port };
}

/** A Kubernetes namespace-like name (RFC 1123 label). */
export function dnsLabel(raw: RawEnv, key: string, def: string): string {
  const v = raw.str(key, def);
  if (/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) return v;
  raw.report(key, `"${v}" is not a valid DNS label (lowercase letters, digits, '-')`);
  return def;
}
