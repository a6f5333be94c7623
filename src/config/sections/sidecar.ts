import { dnsLabel } from './core';
import type { RawEnv } from '../raw';
import type { SidecarConfig } from '../types';

export function parseSidecar(raw: RawEnv, systemNamespace: string): SidecarConfig {
  const pilotPort = raw.port('ISTIO_PILOT_PORT', 15011);
  const cp = raw.get('ISTIO_CP_AUTH')?.value;
  // 1.0.1's istio-start.sh took either the policy name or the whole flag.
  let controlPlaneAuth: 'MUTUAL_TLS' | 'NONE' = 'MUTUAL_TLS';
  if (cp !== undefined) {
    const word = cp.replace(/^--controlPlaneAuthPolicy[ =]/, '').trim();
    if (word !== 'MUTUAL_TLS' && word !== 'NONE')
      raw.fail('ISTIO_CP_AUTH', `"${cp}" is not MUTUAL_TLS or NONE`);
    controlPlaneAuth = word;
  }
  const flags = raw
    .str('ISTIO_AGENT_FLAGS', '')
    .split(/\s+/)
    .filter((s) => s !== '');
  return {
    mode: raw.oneOf('SIDECAR_MODE', ['pilot-agent', 'envoy', 'none', 'auto'] as const, 'auto'),
    binBase: raw.str('ISTIO_BIN_BASE', '/usr/local/bin'),
    pilotAddress: raw.str('PILOT_ADDRESS', `istio-pilot.${systemNamespace}:${pilotPort}`),
    pilotPort,
    controlPlaneAuth,
    svcIp: raw.ip('ISTIO_SVC_IP'),
    podName: raw.optStr('POD_NAME'),
    namespace: dnsLabel(raw, 'ISTIO_NAMESPACE', 'default'),
    service: raw.str('ISTIO_SERVICE', 'rawvm'),
    agentFlags: flags,
    execUser: raw.str('EXEC_USER', 'istio-proxy'),
    configDir: raw.str('ISTIO_PROXY_CONFIG_DIR', '/etc/istio/proxy'),
    adminPort: raw.port('ISTIO_PROXY_ADMIN_PORT', 15000),
    drainSeconds: raw.int('ISTIO_PROXY_DRAIN_SECONDS', 2, 0, 3600),
    parentShutdownSeconds: raw.int('ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS', 3, 1, 3600),
  };
}
