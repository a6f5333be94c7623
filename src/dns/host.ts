import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import {
  detectDnsmasq,
  detectResolved,
  type DnsmasqControl,
  type DnsmasqDetection,
  type ResolvedControl,
} from './dnsmasq';

/**
 * The host as the DNS component sees it: the directory it operates on, dnsmasq and
 * systemd-resolved there, and the clock. Tests pass a temporary root and their own controls.
 */
export interface DnsHost {
  /** "/" in production; every path is taken under it. */
  readonly root: string;
  detectDnsmasq(): Promise<DnsmasqDetection>;
  readonly resolved: ResolvedControl;
  now(): number;
}

/** The real host under `root` ("/" for the daemon): dnsmasq and resolved found as installed there. */
export function systemHost(root: string, exec: Exec, now: () => number): DnsHost {
  const touchHost = root === '/';
  return {
    root,
    detectDnsmasq: () => detectDnsmasq({ root, exec, touchHost }),
    resolved: detectResolved({ root, exec, touchHost }),
    now,
  };
}

/** The host's dnsmasq control; AGENT_E_DNSMASQ_MISSING (78) when there is no dnsmasq service. */
export function installedDnsmasq(det: DnsmasqDetection): DnsmasqControl {
  if (!det.installed) {
    throw new AgentError(
      'AGENT_E_DNSMASQ_MISSING',
      `DNS is configured (ISTIO_DNS_SERVER or ISTIO_*_IP) but ${det.why}: install the package with \`apt-get install dnsmasq\``,
    );
  }
  return det.control;
}
