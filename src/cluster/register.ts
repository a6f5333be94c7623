/**
 * `cluster register` / `deregister` (Istio 1.0 `istioctl register`/`deregister`): a VM's address
 * in a selector-less Service's Endpoints, and the EndpointSlices derived from them.
 *
 * Every write carries the resourceVersion it was computed from; a 409 (someone else changed the
 * object) means: read it again, recompute, write again, a few times with backoff. Nothing is
 * ever overwritten blindly. The slices are recomputed from a fresh read of the Endpoints, and
 * the loop runs until the Endpoints did not change while the slices were written, so two
 * registrations at once both end up in the slices.
 */
import { backoffDelay, type BackoffPolicy, type Random } from '../lib/backoff';
import type { Clock } from '../lib/clock';
import { AgentError } from '../lib/errors';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  SERVICE_ACCOUNTS_ANNOTATION,
  SERVICE_NAME_LABEL,
  SKIP_MIRROR_LABEL,
  addAddress,
  planSlices,
  removeAddress,
  slicesFor,
  withServiceAccount,
} from './endpoints';
import { failureStatus, failureToError } from './errors';
import { isKubeFailure, type KubeApi, type Endpoints, type Service } from './kube';
import { planPorts, type NamedPort, type RequestedPort } from './ports';

export const CONFLICT_POLICY: BackoffPolicy = {
  initialMs: 100,
  maxMs: 2000,
  multiplier: 2,
  jitter: 0.2,
};
/** Tries of each read-modify-write before AGENT_E_CLUSTER_CONFLICT. */
export const MAX_ATTEMPTS = 8;

export interface RegisterDeps {
  readonly clock: Clock;
  readonly random: Random;
}

export type Outcome = 'created' | 'updated' | 'unchanged' | 'absent';

export interface SliceOutcome {
  readonly created: string[];
  readonly updated: string[];
  readonly deleted: string[];
  readonly unchanged: string[];
}

export interface RegisterResult {
  readonly service: Outcome;
  readonly endpoints: Outcome;
  readonly slices: SliceOutcome;
  readonly ports: readonly NamedPort[];
  /** 409s met and retried. */
  readonly conflicts: number;
  /** Addresses in the Endpoints afterwards. */
  readonly addresses: readonly string[];
}

export interface RegisterInput {
  readonly namespace: string;
  readonly service: string;
  readonly ip: string;
  readonly ports: readonly RequestedPort[];
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
}

class Retry {
  conflicts = 0;
  private attempt = 0;
  constructor(
    private readonly deps: RegisterDeps,
    private readonly what: string,
  ) {}

  /** Called on a 409: waits, or gives up after MAX_ATTEMPTS. */
  async again(cause: unknown): Promise<void> {
    this.conflicts++;
    if (++this.attempt >= MAX_ATTEMPTS) {
      throw new AgentError(
        'AGENT_E_CLUSTER_CONFLICT',
        `${this.what}: the object kept changing under us (${MAX_ATTEMPTS} tries, each with its fresh version); run the command again`,
        { cause },
      );
    }
    await this.deps.clock.sleep(backoffDelay(CONFLICT_POLICY, this.attempt - 1, this.deps.random));
  }
}

function mapped(e: unknown, api: KubeApi): unknown {
  return isKubeFailure(e) ? failureToError(e.kubeFailure, api.target) : e;
}

/** 409 Conflict (stale resourceVersion) or AlreadyExists (created meanwhile): read again. */
function isConflict(e: unknown): boolean {
  return failureStatus(e) === 409;
}

function refuseManaged(svc: Service, where: string): void {
  const sel = svc.spec?.selector ?? {};
  if (Object.keys(sel).length > 0) {
    throw new AgentError(
      'AGENT_E_CLUSTER_MANAGED',
      `Service ${where} has a selector (${Object.entries(sel)
        .map(([k, v]) => `${k}=${v}`)
        .join(
          ',',
        )}): Kubernetes manages its endpoints and would remove a VM's; register the VM under another Service name`,
    );
  }
  if (svc.spec?.type === 'ExternalName') {
    throw new AgentError(
      'AGENT_E_CLUSTER_MANAGED',
      `Service ${where} is an ExternalName Service, which has no endpoints; register the VM under another Service name`,
    );
  }
}

async function ensureService(
  api: KubeApi,
  i: RegisterInput,
  retry: Retry,
): Promise<{ outcome: Outcome; ports: NamedPort[]; uid: string | undefined }> {
  const where = `${i.namespace}/${i.service}`;
  for (;;) {
    const cur = await api.getService(i.namespace, i.service).catch((e: unknown) => {
      throw mapped(e, api);
    });
    try {
      if (!cur) {
        const ports = i.ports.map((p) => ({ name: p.name, port: p.port }));
        const made = await api.createService(i.namespace, {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: {
            name: i.service,
            labels: { ...i.labels },
            annotations: { ...i.annotations, [SERVICE_ACCOUNTS_ANNOTATION]: i.serviceAccount },
          },
          spec: {
            ports: ports.map((p) => ({
              name: p.name,
              port: p.port,
              protocol: 'TCP',
              targetPort: p.port,
            })),
          },
        });
        return { outcome: 'created', ports, uid: made.metadata?.uid };
      }
      refuseManaged(cur, where);
      const plan = planPorts(cur.spec?.ports ?? [], i.ports);
      if (typeof plan === 'string')
        throw new AgentError('AGENT_E_USAGE', `Service ${where}: ${plan}`);
      const annotations = cur.metadata?.annotations ?? {};
      const sa = withServiceAccount(annotations[SERVICE_ACCOUNTS_ANNOTATION], i.serviceAccount);
      if (plan.addToService.length === 0 && sa === annotations[SERVICE_ACCOUNTS_ANNOTATION]) {
        return { outcome: 'unchanged', ports: [...plan.ports], uid: cur.metadata?.uid };
      }
      const next: Service = {
        ...cur,
        metadata: {
          ...cur.metadata,
          annotations: { ...annotations, [SERVICE_ACCOUNTS_ANNOTATION]: sa },
        },
        spec: {
          ...cur.spec,
          ports: [
            ...(cur.spec?.ports ?? []),
            ...plan.addToService.map((p) => ({
              name: p.name,
              port: p.port,
              protocol: 'TCP',
              targetPort: p.port,
            })),
          ],
        },
      };
      const done = await api.replaceService(i.namespace, next);
      return { outcome: 'updated', ports: [...plan.ports], uid: done.metadata?.uid };
    } catch (e) {
      if (!isConflict(e)) throw mapped(e, api);
      await retry.again(mapped(e, api));
    }
  }
}

async function ensureEndpoints(
  api: KubeApi,
  i: RegisterInput,
  ports: readonly NamedPort[],
  retry: Retry,
): Promise<Outcome> {
  for (;;) {
    const cur = await api.getEndpoints(i.namespace, i.service).catch((e: unknown) => {
      throw mapped(e, api);
    });
    try {
      if (!cur) {
        await api.createEndpoints(i.namespace, {
          apiVersion: 'v1',
          kind: 'Endpoints',
          metadata: {
            name: i.service,
            labels: { ...i.labels, [SKIP_MIRROR_LABEL]: 'true' },
            annotations: { ...i.annotations, [SERVICE_ACCOUNTS_ANNOTATION]: i.serviceAccount },
          },
          subsets: addAddress([], i.ip, ports).subsets,
        });
        return 'created';
      }
      const change = addAddress(cur.subsets, i.ip, ports);
      const labels = cur.metadata?.labels ?? {};
      const mirrorOff = labels[SKIP_MIRROR_LABEL] === 'true';
      if (!change.changed && mirrorOff) return 'unchanged';
      await api.replaceEndpoints(i.namespace, {
        ...cur,
        metadata: { ...cur.metadata, labels: { ...labels, [SKIP_MIRROR_LABEL]: 'true' } },
        subsets: change.subsets,
      });
      return 'updated';
    } catch (e) {
      if (!isConflict(e)) throw mapped(e, api);
      await retry.again(mapped(e, api));
    }
  }
}

/**
 * Makes our EndpointSlices for the Service match its Endpoints. Repeats until the Endpoints
 * were not changed by someone else while the slices were being written.
 */
async function syncSlices(
  api: KubeApi,
  namespace: string,
  service: string,
  uid: string | undefined,
  retry: Retry,
): Promise<{ slices: SliceOutcome; endpoints: Endpoints | undefined }> {
  const selector = `${SERVICE_NAME_LABEL}=${service},${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const total: SliceOutcome = { created: [], updated: [], deleted: [], unchanged: [] };
  for (;;) {
    try {
      const ep = await api.getEndpoints(namespace, service);
      const existing = await api.listEndpointSlices(namespace, selector);
      const plan = planSlices(slicesFor({ namespace, service, uid }, ep?.subsets), existing);
      for (const s of plan.create) {
        await api.createEndpointSlice(namespace, s);
        total.created.push(s.metadata?.name ?? '');
      }
      for (const s of plan.update) {
        await api.replaceEndpointSlice(namespace, s);
        total.updated.push(s.metadata?.name ?? '');
      }
      for (const n of plan.remove) {
        if (await api.deleteEndpointSlice(namespace, n)) total.deleted.push(n);
      }
      const after = await api.getEndpoints(namespace, service);
      if (after?.metadata?.resourceVersion === ep?.metadata?.resourceVersion) {
        for (const n of plan.unchanged)
          if (![...total.created, ...total.updated].includes(n)) total.unchanged.push(n);
        return { slices: dedupe(total), endpoints: after };
      }
      await retry.again(new Error('the Endpoints changed while the slices were written'));
    } catch (e) {
      if (!isConflict(e)) throw mapped(e, api);
      await retry.again(mapped(e, api));
    }
  }
}

function dedupe(s: SliceOutcome): SliceOutcome {
  const u = (a: string[]): string[] => [...new Set(a)];
  return {
    created: u(s.created),
    updated: u(s.updated),
    deleted: u(s.deleted),
    unchanged: u(s.unchanged),
  };
}

function addresses(ep: Endpoints | undefined): string[] {
  return (ep?.subsets ?? []).flatMap((s) => [
    ...(s.addresses ?? []).map((a) => a.ip),
    ...(s.notReadyAddresses ?? []).map((a) => a.ip),
  ]);
}

export async function register(
  api: KubeApi,
  i: RegisterInput,
  deps: RegisterDeps,
): Promise<RegisterResult> {
  const retry = new Retry(deps, `register ${i.ip} in ${i.namespace}/${i.service}`);
  const svc = await ensureService(api, i, retry);
  const endpoints = await ensureEndpoints(api, i, svc.ports, retry);
  const synced = await syncSlices(api, i.namespace, i.service, svc.uid, retry);
  return {
    service: svc.outcome,
    endpoints,
    slices: synced.slices,
    ports: svc.ports,
    conflicts: retry.conflicts,
    addresses: addresses(synced.endpoints),
  };
}

export interface DeregisterInput {
  readonly namespace: string;
  readonly service: string;
  readonly ip: string;
}

/**
 * Removes the address and the subsets left empty; the Service stays (as in 1.0). An address that
 * is not there is not an error: there is nothing to do (1.0 failed).
 */
export async function deregister(
  api: KubeApi,
  i: DeregisterInput,
  deps: RegisterDeps,
): Promise<RegisterResult> {
  const where = `${i.namespace}/${i.service}`;
  const retry = new Retry(deps, `deregister ${i.ip} from ${where}`);
  const svc = await api.getService(i.namespace, i.service).catch((e: unknown) => {
    throw mapped(e, api);
  });
  if (svc) refuseManaged(svc, where);
  let outcome: Outcome = 'absent';
  for (;;) {
    const cur = await api.getEndpoints(i.namespace, i.service).catch((e: unknown) => {
      throw mapped(e, api);
    });
    if (!cur) break;
    const change = removeAddress(cur.subsets, i.ip);
    if (!change.changed) {
      outcome = 'unchanged';
      break;
    }
    try {
      await api.replaceEndpoints(i.namespace, { ...cur, subsets: change.subsets });
      outcome = 'updated';
      break;
    } catch (e) {
      if (!isConflict(e)) throw mapped(e, api);
      await retry.again(mapped(e, api));
    }
  }
  const synced = await syncSlices(api, i.namespace, i.service, svc?.metadata?.uid, retry);
  return {
    service: svc ? 'unchanged' : 'absent',
    endpoints: outcome,
    slices: synced.slices,
    ports: [],
    conflicts: retry.conflicts,
    addresses: addresses(synced.endpoints),
  };
}
