/**
 * What a user names on a `cluster` command line, checked the way the cluster and the VM will
 * take it: IP addresses (strictly), Citadel's host:port, VM names, Service names, label and annotation keys, a
 * cluster domain, an ssh destination, ISTIO_INBOUND_PORTS. Pure: each `…Problem` returns what
 * is wrong, naming the argument (`what`), or undefined when the text is fine as it is; the
 * command turns the problem into a usage error.
 */
import { parseCidr } from '../config/index';
import { parseHostPort } from '../lib/host-port';

/** An RFC 1123 label (namespaces, most object names, port names): at most 63 characters. */
export const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** An RFC 1035 label (Service names): as DNS_1123_LABEL, starting with a letter. */
export const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** An IP address, strictly: no leading zeros (octal to some parsers), no zone, no prefix. */
export function ipProblem(what: string, text: string): string | undefined {
  const c = parseCidr(text);
  if (typeof c === 'string' || text.includes('/') || text.includes('%'))
    return `${what} "${text}" is not an IP address`;
  return undefined;
}

/** CITADEL_ADDRESS as the agent takes it (config/sections/ca.ts): `host:port`, `[v6]:port`. */
export function citadelAddressProblem(what: string, text: string): string | undefined {
  if (!parseHostPort(text).ok) return `${what} "${text}" is not HOST:PORT`;
  return undefined;
}

/** A VM's name: the bundle's folder and archive entry, POD_NAME. */
export function vmNameProblem(text: string): string | undefined {
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$/.test(text))
    return `VM_NAME "${text}" must be letters, digits, '.', '_' or '-' (at most 63)`;
  return undefined;
}

/** A Service's name (a DNS-1035 label). */
export function serviceNameProblem(text: string): string | undefined {
  if (!DNS_1035_LABEL.test(text))
    return `SERVICE "${text}" is not a Service name (lower-case DNS label)`;
  return undefined;
}

/** The cluster's DNS domain (`cluster.local`). */
export function clusterDomainProblem(what: string, text: string): string | undefined {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(text)) return `${what} "${text}" is not a domain`;
  return undefined;
}

/** Where ssh logs in, `[USER@]HOST`: nothing ssh would read as an option or a second word. */
export function isSshDestination(text: string): boolean {
  return /^([A-Za-z0-9._-]+@)?[A-Za-z0-9.:_[\]-]+$/.test(text);
}

/** ISTIO_INBOUND_PORTS as sidecar.env takes it: `8080,9090`, or `*` (every port). */
export function inboundPortsProblem(what: string, text: string): string | undefined {
  if (!/^(\*|\d{1,5}(,\d{1,5})*)$/.test(text))
    return `${what} "${text}" is not a list of port numbers (8080,9090) or *`;
  return undefined;
}

/** A label or annotation key: `[prefix/]name`. */
const OBJECT_KEY = /^([a-z0-9.-]+\/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/**
 * `K=V` items, each possibly several separated by commas, as labels or annotations: a bare `K`
 * has the empty value, a later item wins. Returns the problem (a string) for a bad key.
 */
export function parseKeyValues(
  what: string,
  items: readonly string[],
): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const item of items.flatMap((s) => s.split(','))) {
    if (item === '') continue;
    const i = item.indexOf('=');
    const k = i < 0 ? item : item.slice(0, i);
    if (!OBJECT_KEY.test(k)) return `${what} "${item}": "${k}" is not a label or annotation key`;
    out[k] = i < 0 ? '' : item.slice(i + 1);
  }
  return out;
}
