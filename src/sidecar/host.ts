/**
 * Facts about this host the sidecar's identity is built from: its primary address (ISTIO_SVC_IP's
 * default) and short hostname (POD_NAME's default).
 *
 * 1.0's istio-start.sh used `hostname --ip-address`, which on Debian returns 127.0.1.1 from
 * /etc/hosts. The primary address here is the one on the interface of the default route, the
 * address other hosts reach this one by.
 */
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';

export type Interfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

/** The interface of the IPv4 default route with the lowest metric, from /proc/net/route text. */
export function defaultRouteInterface(procNetRoute: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of procNetRoute.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, , flags, , , metric, mask] = f;
    // RTF_UP = 0x1; destination and mask 0 = default route.
    if (dest !== '00000000' || mask !== '00000000' || (parseInt(flags!, 16) & 1) === 0) continue;
    const m = Number(metric);
    if (!best || m < best.metric) best = { iface: iface!, metric: m };
  }
  return best?.iface;
}

function usableV4(a: os.NetworkInterfaceInfo): boolean {
  return (
    a.family === 'IPv4' &&
    !a.internal &&
    !a.address.startsWith('127.') &&
    !a.address.startsWith('169.254.')
  );
}

function usableV6(a: os.NetworkInterfaceInfo): boolean {
  const x = a.address.toLowerCase();
  return a.family === 'IPv6' && !a.internal && x !== '::1' && !x.startsWith('fe80:');
}

/**
 * The host's primary non-loopback address: the default route's interface's first IPv4 address,
 * else the first usable IPv4 address of any interface, else a global IPv6 address (default
 * route's interface first). undefined when the host has none.
 */
export function primaryAddress(
  procNetRoute: string | undefined,
  ifaces: Interfaces,
): string | undefined {
  const dflt = procNetRoute === undefined ? undefined : defaultRouteInterface(procNetRoute);
  const on = (name: string | undefined): os.NetworkInterfaceInfo[] =>
    name === undefined ? [] : (ifaces[name] ?? []);
  const all = Object.values(ifaces).flatMap((l) => l ?? []);
  return (
    on(dflt).find(usableV4)?.address ??
    all.find(usableV4)?.address ??
    on(dflt).find(usableV6)?.address ??
    all.find(usableV6)?.address
  );
}

/** `hostname -s`: up to the first dot. */
export function shortHostname(h: string): string {
  return h.split('.')[0] ?? h;
}

export interface HostFacts {
  readonly primaryIp: string | undefined;
  readonly hostname: string;
}

export async function readHostFacts(): Promise<HostFacts> {
  const route = await readFile('/proc/net/route', 'utf8').catch(() => undefined);
  return { primaryIp: primaryAddress(route, os.networkInterfaces()), hostname: os.hostname() };
}
