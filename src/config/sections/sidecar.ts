import { parseHostPort } from '../../lib/host-port';
import { dnsLabel } from './core';
import type { RawEnv } from '../raw';
import * as path from 'node:path';
import type { CoreConfig, ProxyLogLevel, SidecarConfig } from '../types';

const META_PREFIX = 'ISTIO_META_';

export function parseSidecar(raw: RawEnv, core: CoreConfig): SidecarConfig {
  const systemNamespace = core.systemNamespace;
  const pilotPort = raw.port('ISTIO_PILOT_PORT', 15011);
  // 1.0.1's istio-start.sh: CONTROL_PLANE_AUTH_POLICY="--controlPlaneAuthPolicy MUTUAL_TLS", and a
  // non-empty ISTIO_CP_AUTH replaces the policy word. pilot-agent knows MUTUAL_TLS and NONE only,
  // so anything else is refused here rather than by a crash-looping pilot-agent.
  const controlPlaneAuth = raw.oneOf(
    'ISTIO_CP_AUTH',
    ['MUTUAL_TLS', 'NONE'] as const,
    'MUTUAL_TLS',
  );
  const pilotAddress = raw.str('PILOT_ADDRESS', `istio-pilot.${systemNamespace}:${pilotPort}`);
  if (!parseHostPort(pilotAddress).ok) {
    raw.report(
      'PILOT_ADDRESS',
      `"${pilotAddress}" is not host:port (e.g. istio-pilot.istio-system:15011)`,
    );
  }
  const flags = raw
    .str('ISTIO_AGENT_FLAGS', '')
    .split(/\s+/)
    .filter((s) => s !== '');
  const execUser = raw.str('EXEC_USER', 'istio-proxy');
  if (/[\s:/]/.test(execUser)) raw.report('EXEC_USER', `"${execUser}" is not a user name or uid`);
  // The sidecar runs what the Pilot and the network hand it: never as root.
  if (execUser === 'root' || /^0+$/.test(execUser))
    raw.report(
      'EXEC_USER',
      'the sidecar must not run as root; use istio-proxy (the package creates it)',
    );
  const podName = raw.optStr('POD_NAME');
  if (podName !== undefined && /[\s~]/.test(podName)) {
    raw.report('POD_NAME', `"${podName}" contains whitespace or '~' (the service node separator)`);
  }
  return {
    mode: raw.oneOf('SIDECAR_MODE', ['pilot-agent', 'envoy', 'none', 'auto'] as const, 'auto'),
    binBase: raw.str('ISTIO_BIN_BASE', '/usr/local/bin'),
    pilotAddress,
    pilotPort,
    controlPlaneAuth,
    svcIp: raw.ip('ISTIO_SVC_IP'),
    podName,
    namespace: dnsLabel(raw, 'ISTIO_NAMESPACE', 'default'),
    service: raw.str('ISTIO_SERVICE', 'rawvm'),
    agentFlags: flags,
    execUser,
    configDir: raw.str('ISTIO_PROXY_CONFIG_DIR', path.join(core.stateDir, 'envoy')),
    adminPort: raw.port('ISTIO_PROXY_ADMIN_PORT', 15000),
    drainSeconds: raw.int('ISTIO_PROXY_DRAIN_SECONDS', 2, 0, 3600),
    parentShutdownSeconds: raw.int('ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS', 3, 1, 3600),
    proxyLogLevel: raw.oneOf<ProxyLogLevel>(
      'ISTIO_PROXY_LOG_LEVEL',
      ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'],
      'warning',
      { caseInsensitive: true },
    ),
    concurrency: raw.int('ISTIO_PROXY_CONCURRENCY', 0, 0, 1024),
    readyTimeoutMs: raw.duration('ISTIO_PROXY_READY_TIMEOUT', 30_000, 0, 3_600_000),
    logLinesPerMinute: raw.int('ISTIO_PROXY_LOG_LINES_PER_MINUTE', 1000, 0, 1_000_000),
    metadata: metadata(raw),
  };
}

/** ISTIO_META_* from the files and the environment, as pilot-agent 1.0 read them from its environment. */
function metadata(raw: RawEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of raw.keys().sort()) {
    if (!key.startsWith(META_PREFIX) || key.length === META_PREFIX.length) continue;
    const v = raw.get(key);
    if (v) out[key.slice(META_PREFIX.length)] = v.value;
  }
  return out;
}
