import type { DnsServer } from '../config/types';

/**
 * The dnsmasq drop-in, as Istio 1.0's `setupMeshEx.sh generateDnsmasq` wrote it, from
 * configuration. Pure: same input, same bytes, so "unchanged" is a string comparison.
 */

/** First line of every file the agent writes; a file without it is not the agent's. */
export const MANAGED_MARK = '# Managed by istio-node-agent.';

export const DROP_IN_NAME = 'kubedns';

/** The upstream list systemd-resolved keeps of its real (uplink) servers. */
export const RESOLVED_UPLINK_RESOLV_CONF = '/run/systemd/resolve/resolv.conf';

export interface KubednsInput {
  readonly dnsServer: DnsServer | undefined;
  readonly clusterDomain: string;
  readonly systemNamespace: string;
  readonly pilotIp: string | undefined;
  readonly citadelIp: string | undefined;
  readonly mixerIp: string | undefined;
  /**
   * Set when systemd-resolved sends every query to dnsmasq as well: dnsmasq must then take its
   * upstream servers from resolved's uplink list rather than from the stub at 127.0.0.53,
   * which would send the query straight back (a loop).
   */
  readonly upstreamResolvFile?: string;
}

/** One name dnsmasq answers itself, with the address it answers. */
export interface LocalName {
  readonly name: string;
  readonly address: string;
}

/**
 * The names with fixed addresses, in generateDnsmasq's order: policy, telemetry, pilot,
 * citadel, ca; first bare, then with the system namespace as suffix. Only for addresses set.
 */
export function localNames(input: KubednsInput): LocalName[] {
  const base: [string, string | undefined][] = [
    ['istio-policy', input.mixerIp],
    ['istio-telemetry', input.mixerIp],
    ['istio-pilot', input.pilotIp],
    ['istio-citadel', input.citadelIp],
    ['istio-ca', input.citadelIp],
  ];
  const set = base.filter((e): e is [string, string] => e[1] !== undefined);
  return [
    ...set.map(([name, address]) => ({ name, address })),
    ...set.map(([name, address]) => ({ name: `${name}.${input.systemNamespace}`, address })),
  ];
}

/** The domain forwarded to the cluster DNS server, when one is set. */
export function forwardedDomain(input: KubednsInput): string | undefined {
  return input.dnsServer ? `svc.${input.clusterDomain}` : undefined;
}

/** Number of names (domains) the drop-in covers: the forwarded domain plus the local names. */
export function nameCount(input: KubednsInput): number {
  return localNames(input).length + (input.dnsServer ? 1 : 0);
}

/** dnsmasq's `server=` target: `addr` or `addr#port`; IPv6 needs no brackets. */
export function serverTarget(s: DnsServer): string {
  return s.port === 53 ? s.address : `${s.address}#${s.port}`;
}

export function renderKubedns(input: KubednsInput): string {
  const lines = [
    MANAGED_MARK,
    '# Written from ISTIO_DNS_SERVER, ISTIO_CLUSTER_DOMAIN, ISTIO_PILOT_IP, ISTIO_CITADEL_IP,',
    '# ISTIO_MIXER_IP and ISTIO_SYSTEM_NAMESPACE (cluster.env, sidecar.env) at every start and',
    '# reload; edits here are overwritten. To stop the agent managing it: remove those variables,',
    '# then run `istio-node-agent dns clean` (removes this file, puts back a file it replaced and',
    '# undoes the resolver change).',
  ];
  if (input.upstreamResolvFile !== undefined) {
    lines.push(
      '# systemd-resolved sends queries here too: take upstream servers from its uplink list,',
      '# not from its stub at 127.0.0.53, which would send them back here.',
      `resolv-file=${input.upstreamResolvFile}`,
    );
  }
  lines.push(...kubednsRecords(input));
  return lines.join('\n') + '\n';
}

/** The `server=` and `address=` lines alone, as 1.0's generateDnsmasq wrote its `kubedns`. */
export function kubednsRecords(input: KubednsInput): string[] {
  const lines: string[] = [];
  const domain = forwardedDomain(input);
  if (domain !== undefined && input.dnsServer)
    lines.push(`server=/${domain}/${serverTarget(input.dnsServer)}`);
  for (const n of localNames(input)) lines.push(`address=/${n.name}/${n.address}`);
  return lines;
}

/** True when `content` is a drop-in the agent wrote (it starts with the managed mark). */
export function isManaged(content: string | Uint8Array): boolean {
  const text = typeof content === 'string' ? content : Buffer.from(content).toString('utf8');
  return text.startsWith(MANAGED_MARK);
}
