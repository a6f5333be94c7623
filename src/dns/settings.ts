import * as path from 'node:path';
import type { AgentConfig, DnsConfig } from '../config/types';
import { DROP_IN_NAME, type KubednsInput } from './render';

/** The part of the configuration DNS uses. */
export interface DnsSettings {
  readonly dns: DnsConfig;
  readonly systemNamespace: string;
  readonly stateDir: string;
}

export function dnsSettings(c: AgentConfig): DnsSettings {
  return { dns: c.dns, systemNamespace: c.core.systemNamespace, stateDir: c.core.stateDir };
}

/** Host path of the drop-in: `<ISTIO_DNSMASQ_DIR>/kubedns`. */
export function dropInPath(s: DnsSettings): string {
  return path.join(s.dns.dropInDir, DROP_IN_NAME);
}

/** What the drop-in is rendered from. */
export function kubednsInput(s: DnsSettings, upstreamResolvFile?: string): KubednsInput {
  return {
    dnsServer: s.dns.dnsServer,
    clusterDomain: s.dns.clusterDomain,
    systemNamespace: s.systemNamespace,
    pilotIp: s.dns.pilotIp,
    citadelIp: s.dns.citadelIp,
    mixerIp: s.dns.mixerIp,
    ...(upstreamResolvFile !== undefined ? { upstreamResolvFile } : {}),
  };
}
