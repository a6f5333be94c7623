import { isIP } from 'node:net';
import * as path from 'node:path';
import { parseHostPort, parsePort } from '../../lib/host-port';
import type { RawEnv } from '../raw';
import type { DnsConfig, DnsServer } from '../types';

/**
 * The DNS section: what `setupMeshEx.sh generateDnsmasq` put into `kubedns` in Istio 1.0, as
 * variables. The system namespace (the `.istio-system` suffix of the names) is
 * `config.core.systemNamespace`.
 */
export function parseDns(raw: RawEnv): DnsConfig {
  const dnsServer = dnsServerAddress(raw, 'ISTIO_DNS_SERVER');
  const pilotIp = hostAddress(raw, 'ISTIO_PILOT_IP');
  const citadelIp = hostAddress(raw, 'ISTIO_CITADEL_IP');
  const mixerIp = hostAddress(raw, 'ISTIO_MIXER_IP');
  let clusterDomain = raw.str('ISTIO_CLUSTER_DOMAIN', 'cluster.local');
  if (clusterDomain.endsWith('.')) clusterDomain = clusterDomain.slice(0, -1);
  if (
    clusterDomain.length > 253 ||
    !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/.test(
      clusterDomain,
    )
  ) {
    raw.report(
      'ISTIO_CLUSTER_DOMAIN',
      `"${clusterDomain}" is not a DNS domain (e.g. cluster.local)`,
    );
  }
  const dropInDir = raw.str('ISTIO_DNSMASQ_DIR', '/etc/dnsmasq.d');
  if (!path.isAbsolute(dropInDir)) {
    raw.report('ISTIO_DNSMASQ_DIR', `"${dropInDir}" is not an absolute path`);
  }
  return {
    enabled: [dnsServer, pilotIp, citadelIp, mixerIp].some((x) => x !== undefined),
    dnsServer,
    clusterDomain,
    pilotIp,
    citadelIp,
    mixerIp,
    dropInDir: path.normalize(dropInDir),
    resolver: raw.oneOf(
      'ISTIO_DNS_RESOLVER',
      ['auto', 'dhclient', 'resolv.conf', 'resolved', 'resolvconf', 'none'] as const,
      'auto',
    ),
  };
}

/** Why `s` cannot be an address dnsmasq hands out or forwards to; undefined when it can. */
export function addressProblem(s: string): string | undefined {
  if (s.includes('%')) return `"${s}" has an IPv6 zone index, which dnsmasq cannot use here`;
  const family = isIP(s);
  if (family === 0) return `"${s}" is not an IPv4 or IPv6 address`;
  if (family === 4 && s === '0.0.0.0') return `"${s}" is the unspecified address`;
  if (family === 6 && /^[0:]+$/.test(s)) return `"${s}" is the unspecified address`;
  return undefined;
}

/** An IPv4 or IPv6 address for an `address=` line. */
function hostAddress(raw: RawEnv, key: string): string | undefined {
  const v = raw.get(key)?.value.trim();
  if (v === undefined || v === '') return undefined;
  const problem = addressProblem(v);
  if (problem === undefined) return v;
  raw.report(key, problem);
  return undefined;
}

/**
 * The cluster DNS server: `10.0.0.10`, `10.0.0.10:5353`, `fd00::a`, `[fd00::a]`, `[fd00::a]:5353`,
 * or dnsmasq's own `address#port`.
 */
export function parseDnsServer(s: string): DnsServer | string {
  let host: string;
  let port: number | undefined;
  const hash = /^([^#]+)#(\d+)$/.exec(s);
  if (hash) {
    host = hash[1]!;
    port = parsePort(hash[2]!);
  } else {
    const r = parseHostPort(s, { defaultPort: 53 });
    if (!r.ok && r.problem === 'brackets') return `"${s}": only an IPv6 address goes in brackets`;
    // Not host:port at all: say what is wrong with it as an address.
    host = r.host ?? s;
    port = r.ok ? r.port : r.problem === 'port' ? undefined : 53;
  }
  const problem = addressProblem(host);
  if (problem !== undefined) return problem;
  if (port === undefined) return `"${s}" has an invalid port (1-65535)`;
  const family = isIP(host) as 4 | 6;
  if (port === 53 && isLoopback(host, family)) {
    return `"${s}" is a loopback address on port 53: dnsmasq would forward cluster names to itself; use the cluster DNS address (or another port)`;
  }
  return { address: host, family, port };
}

function dnsServerAddress(raw: RawEnv, key: string): DnsServer | undefined {
  const v = raw.get(key)?.value.trim();
  if (v === undefined || v === '') return undefined;
  const r = parseDnsServer(v);
  if (typeof r !== 'string') return r;
  raw.report(key, r);
  return undefined;
}

function isLoopback(address: string, family: 4 | 6): boolean {
  if (family === 4) return address.startsWith('127.');
  return /^(0{0,4}:){2,7}0{0,3}1$/.test(address) || address === '::1';
}
