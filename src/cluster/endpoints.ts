/**
 * The endpoints of a selector-less Service, as pure functions: Istio 1.0's subset merge
 * (`istioctl register`/`deregister`) on the Endpoints object, and the EndpointSlices that
 * current Kubernetes expects beside it, derived from those subsets.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { EndpointPort, EndpointSlice, EndpointSubset } from './types';
import { portKey, type NamedPort } from './ports';

/** Istio 1.0's annotation: the service accounts a VM service runs as (comma-separated). */
export const SERVICE_ACCOUNTS_ANNOTATION = 'alpha.istio.io/kubernetes-serviceaccounts';
/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Who manages an EndpointSlice; Kubernetes' own controllers leave slices of others alone. */
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
/** Our controller name in MANAGED_BY_LABEL. */
export const MANAGED_BY = 'istio-node-agent';
/**
 * On an Endpoints object: tells Kubernetes' EndpointSlice mirroring controller not to mirror it,
 * since we write the slices ourselves (otherwise every address would be there twice).
 */
export const SKIP_MIRROR_LABEL = 'endpointslice.kubernetes.io/skip-mirror';

export interface SubsetChange {
  readonly subsets: EndpointSubset[];
  readonly changed: boolean;
}

function endpointPorts(ports: readonly NamedPort[]): EndpointPort[] {
  return ports.map((p) => ({ name: p.name, port: p.port, protocol: 'TCP' }));
}

function hasIp(s: EndpointSubset, ip: string): boolean {
  return [...(s.addresses ?? []), ...(s.notReadyAddresses ?? [])].some((a) => a.ip === ip);
}

/**
 * Adds `ip` to the subset whose port numbers are exactly `ports` (1.0 compared the numbers), or
 * adds a new subset. Already there: unchanged (1.0 appended it a second time).
 */
export function addAddress(
  subsets: readonly EndpointSubset[] | undefined,
  ip: string,
  ports: readonly NamedPort[],
): SubsetChange {
  const out = (subsets ?? []).map((s) => ({ ...s }));
  const key = portKey(ports);
  const match = out.find((s) => portKey(s.ports ?? []) === key);
  if (match) {
    if (hasIp(match, ip)) return { subsets: out, changed: false };
    match.addresses = [...(match.addresses ?? []), { ip }];
    return { subsets: out, changed: true };
  }
  out.push({ addresses: [{ ip }], ports: endpointPorts(ports) });
  return { subsets: out, changed: true };
}

/** Removes `ip` from every subset and drops the subsets left without an address. */
export function removeAddress(
  subsets: readonly EndpointSubset[] | undefined,
  ip: string,
): SubsetChange {
  let changed = false;
  const out: EndpointSubset[] = [];
  for (const s of subsets ?? []) {
    const addresses = (s.addresses ?? []).filter((a) => a.ip !== ip);
    const notReady = (s.notReadyAddresses ?? []).filter((a) => a.ip !== ip);
    if (
      addresses.length !== (s.addresses ?? []).length ||
      notReady.length !== (s.notReadyAddresses ?? []).length
    )
      changed = true;
    if (addresses.length === 0 && notReady.length === 0) continue;
    const next: EndpointSubset = { ...s };
    if (s.addresses !== undefined) next.addresses = addresses;
    if (s.notReadyAddresses !== undefined) next.notReadyAddresses = notReady;
    out.push(next);
  }
  return { subsets: out, changed };
}

/** Every address of the subsets, for messages. */
export function addressCount(subsets: readonly EndpointSubset[] | undefined): number {
  return (subsets ?? []).reduce(
    (n, s) => n + (s.addresses ?? []).length + (s.notReadyAddresses ?? []).length,
    0,
  );
}

export interface SliceOwner {
  readonly namespace: string;
  readonly service: string;
  /** The Service's uid: slices are owned by it and go when it goes. */
  readonly uid?: string;
}

/** A deterministic slice name: one slice per address family and port set of the Service. */
export function sliceName(service: string, family: 'IPv4' | 'IPv6', key: string): string {
  const h = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return `${service}-vm-${family.toLowerCase()}-${h}`;
}

/**
 * The EndpointSlices for the subsets: one per (address family, port set), labelled with the
 * Service's name and our controller name, owned by the Service. Addresses of `notReadyAddresses`
 * are endpoints with `ready: false`.
 */
export function slicesFor(
  owner: SliceOwner,
  subsets: readonly EndpointSubset[] | undefined,
): EndpointSlice[] {
  const groups = new Map<string, EndpointSlice>();
  for (const s of subsets ?? []) {
    const key = portKey(s.ports ?? []);
    const all = [
      ...(s.addresses ?? []).map((a) => ({ ip: a.ip, ready: true })),
      ...(s.notReadyAddresses ?? []).map((a) => ({ ip: a.ip, ready: false })),
    ];
    for (const a of all) {
      const family = isIP(a.ip) === 6 ? 'IPv6' : 'IPv4';
      const name = sliceName(owner.service, family, key);
      let slice = groups.get(name);
      if (!slice) {
        slice = {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name,
            namespace: owner.namespace,
            labels: { [SERVICE_NAME_LABEL]: owner.service, [MANAGED_BY_LABEL]: MANAGED_BY },
            ...(owner.uid
              ? {
                  ownerReferences: [
                    {
                      apiVersion: 'v1',
                      kind: 'Service',
                      name: owner.service,
                      uid: owner.uid,
                      controller: true,
                    },
                  ],
                }
              : {}),
          },
          addressType: family,
          endpoints: [],
          ports: [...(s.ports ?? [])]
            .sort((x, y) => x.port - y.port)
            .map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
        };
        groups.set(name, slice);
      }
      if (slice.endpoints.some((e) => e.addresses.includes(a.ip))) continue;
      slice.endpoints.push({
        addresses: [a.ip],
        conditions: { ready: a.ready, serving: a.ready, terminating: false },
      });
    }
  }
  return [...groups.values()];
}

export interface SlicePlan {
  readonly create: readonly EndpointSlice[];
  /** Desired content with the existing object's resourceVersion, for an update. */
  readonly update: readonly EndpointSlice[];
  readonly remove: readonly string[];
  readonly unchanged: readonly string[];
}

/** The part of a slice we own, for comparison. */
function essence(s: EndpointSlice): string {
  const labels = s.metadata?.labels ?? {};
  return JSON.stringify({
    addressType: s.addressType,
    endpoints: s.endpoints.map((e) => ({
      addresses: e.addresses,
      ready: e.conditions?.ready ?? true,
      serving: e.conditions?.serving ?? e.conditions?.ready ?? true,
      terminating: e.conditions?.terminating ?? false,
    })),
    ports: (s.ports ?? []).map((p) => ({
      name: p.name ?? '',
      port: p.port,
      protocol: p.protocol ?? 'TCP',
    })),
    service: labels[SERVICE_NAME_LABEL],
    managedBy: labels[MANAGED_BY_LABEL],
    owner: (s.metadata?.ownerReferences ?? []).map((o) => o.uid),
  });
}

/**
 * What to write so that the slices we manage for the Service are `desired`. `existing` are the
 * slices carrying our managed-by label for it; slices of other managers are never touched.
 */
export function planSlices(
  desired: readonly EndpointSlice[],
  existing: readonly EndpointSlice[],
): SlicePlan {
  const have = new Map(existing.map((s) => [s.metadata?.name ?? '', s]));
  const create: EndpointSlice[] = [];
  const update: EndpointSlice[] = [];
  const unchanged: string[] = [];
  for (const d of desired) {
    const name = d.metadata?.name ?? '';
    const cur = have.get(name);
    if (!cur) create.push(d);
    else if (essence(cur) === essence(d)) unchanged.push(name);
    else {
      update.push({
        ...d,
        metadata: {
          ...cur.metadata,
          ...d.metadata,
          labels: { ...cur.metadata?.labels, ...d.metadata?.labels },
          resourceVersion: cur.metadata?.resourceVersion,
        },
      });
    }
  }
  const wanted = new Set(desired.map((d) => d.metadata?.name));
  const remove = existing
    .map((s) => s.metadata?.name ?? '')
    .filter((n) => n !== '' && !wanted.has(n));
  return { create, update, remove, unchanged };
}

/** Adds `sa` to a comma-separated service-account annotation value, once. */
export function withServiceAccount(value: string | undefined, sa: string): string {
  const list = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return list.includes(sa) ? list.join(',') : [...list, sa].join(',');
}
