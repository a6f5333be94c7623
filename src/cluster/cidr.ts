/**
 * The cluster's service range, for ISTIO_SERVICE_CIDR. Istio 1.0 asked GKE (`gcloud container
 * clusters describe … servicesIpv4Cidr`); without cloud access the range is known to the API
 * server only: from the ServiceCIDR API where the cluster serves it (Kubernetes 1.31+, GA in
 * 1.33), else from the error the API server answers when a Service asks for a cluster IP outside
 * its range, with a dry run so nothing is created (the way kubectl users and several tools do).
 */
import { parseCidr } from '../config/index';
import type { Service } from './types';

/**
 * Addresses a probe Service asks for: documentation ranges (RFC 5737, RFC 3849), which no
 * cluster uses for its services; the second is tried when the first is, unexpectedly, inside.
 */
export const PROBE_IPS: Readonly<Record<4 | 6, readonly string[]>> = {
  4: ['203.0.113.1', '198.51.100.1'],
  6: ['2001:db8::1', '2001:db8:ffff::1'],
};

export const PROBE_SERVICE_NAME = 'istio-node-agent-cidr-probe';

/** The Service a dry-run probe creates (never stored: dryRun=All). */
export function probeService(ip: string): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: PROBE_SERVICE_NAME },
    spec: {
      type: 'ClusterIP',
      clusterIP: ip,
      clusterIPs: [ip],
      ports: [{ name: 'probe', port: 1, protocol: 'TCP' }],
    },
  };
}

/** Every text of an API `Status`: its message and each cause's message. */
export function statusTexts(body: unknown): string[] {
  if (typeof body === 'string') {
    try {
      return statusTexts(JSON.parse(body) as unknown);
    } catch {
      return [body];
    }
  }
  if (typeof body !== 'object' || body === null) return [];
  const b = body as { message?: unknown; details?: { causes?: { message?: unknown }[] } };
  const out: string[] = [];
  if (typeof b.message === 'string') out.push(b.message);
  for (const c of b.details?.causes ?? []) if (typeof c.message === 'string') out.push(c.message);
  return out;
}

/**
 * The ranges named by the API server's answer to a Service whose cluster IP is out of range.
 * Kubernetes words it `… The range of valid IPs is 10.96.0.0/12` (one allocator), or lists
 * several ranges separated by spaces (the ServiceCIDR allocator, 1.31+); older releases say
 * `provided IP is not in the valid range`. Returns the ranges, canonical, deduplicated, in order;
 * empty when the answer names none.
 */
export function cidrsFromRangeError(body: unknown): string[] {
  const out: string[] = [];
  for (const text of statusTexts(body)) {
    const re = /valid IPs is\s+((?:CIDR\s+)?[0-9A-Fa-f.:/,\s]+)/g;
    for (const m of text.matchAll(re)) {
      for (const token of m[1]!.split(/[\s,]+/)) {
        if (!token.includes('/')) continue;
        const c = parseCidr(token.replace(/\.$/, ''));
        if (typeof c === 'string') continue;
        if (!out.includes(c.text)) out.push(c.text);
      }
    }
  }
  return out;
}

/** True when the answer says the address family is not configured (a single-stack cluster). */
export function familyNotConfigured(body: unknown): boolean {
  return statusTexts(body).some((t) => /not configured on this cluster/i.test(t));
}

/**
 * `--service-cidr CIDR[,CIDR]`: each range canonical, in order (blanks around commas and empty
 * items ignored; an empty list is empty). Returns the first bad range's problem as text.
 */
export function parseServiceCidrs(text: string): string[] | string {
  const out: string[] = [];
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const c = parseCidr(part);
    if (typeof c === 'string') return c;
    out.push(c.text);
  }
  return out;
}

/** Canonical, deduplicated ranges from ServiceCIDR objects' `spec.cidrs`. */
export function canonicalCidrs(cidrs: readonly string[]): string[] {
  const out: string[] = [];
  for (const c of cidrs) {
    const p = parseCidr(c.trim());
    if (typeof p === 'string') continue;
    if (!out.includes(p.text)) out.push(p.text);
  }
  return out;
}
