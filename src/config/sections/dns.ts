import type { RawEnv } from '../raw';
import type { DnsConfig } from '../types';

export function parseDns(raw: RawEnv): DnsConfig {
  const dnsServer = raw.ip('ISTIO_DNS_SERVER');
  const pilotIp = raw.ip('ISTIO_PILOT_IP');
  const citadelIp = raw.ip('ISTIO_CITADEL_IP');
  const mixerIp = raw.ip('ISTIO_MIXER_IP');
  const clusterDomain = raw.str('ISTIO_CLUSTER_DOMAIN', 'cluster.local');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(clusterDomain)) {
    raw.fail('ISTIO_CLUSTER_DOMAIN', `"${clusterDomain}" is not a DNS domain`);
  }
  return {
    enabled: [dnsServer, pilotIp, citadelIp, mixerIp].some((x) => x !== undefined),
    dnsServer,
    clusterDomain,
    pilotIp,
    citadelIp,
    mixerIp,
    dropInDir: raw.str('ISTIO_DNSMASQ_DIR', '/etc/dnsmasq.d'),
    resolver: raw.oneOf(
      'ISTIO_DNS_RESOLVER',
      ['auto', 'dhclient', 'resolv.conf', 'resolved', 'none'] as const,
      'auto',
    ),
  };
}
