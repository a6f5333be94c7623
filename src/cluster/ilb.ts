/**
 * The addresses a VM uses to reach the cluster, as Istio 1.0 exposed them (`mesh-expansion.yaml`:
 * internal load balancers `dns-ilb` in kube-system, `istio-pilot-ilb`, `citadel-ilb` and
 * `mixer-ilb` in the Istio namespace), and `setupMeshEx.sh generateDnsmasq`'s wait for them:
 * poll until each has a load-balancer address, a progress line per Service, give up after a
 * while. The DNS variables and 1.0's `kubedns` file are rendered from the result.
 */
import { isIP } from 'node:net';
import type { Clock } from '../lib/clock';
import { AgentError } from '../lib/errors';
import { formatDuration } from '../lib/duration';
import { parseHostPort } from '../lib/host-port';
import { kubednsRecords } from '../dns/index';
import { kubeCall } from './errors';
import type { EnvEntry } from './envfile';
import { DNS_1123_LABEL, ipProblem } from './inputs';
import type { KubeApi, Service } from './kube';

export type IlbRole = 'dns' | 'pilot' | 'citadel' | 'mixer';
export const ILB_ROLES: readonly IlbRole[] = ['dns', 'pilot', 'citadel', 'mixer'];

export interface ServiceRef {
  readonly namespace: string;
  readonly name: string;
}

/** Istio 1.0's control-plane namespace (`--istio-namespace`). */
export const DEFAULT_ISTIO_NAMESPACE = 'istio-system';

/** 1.0's names; each can be overridden with `--<role>-service [NS/]NAME`. */
export function defaultIlbs(istioNamespace: string): Record<IlbRole, ServiceRef> {
  return {
    dns: { namespace: 'kube-system', name: 'dns-ilb' },
    pilot: { namespace: istioNamespace, name: 'istio-pilot-ilb' },
    citadel: { namespace: istioNamespace, name: 'citadel-ilb' },
    mixer: { namespace: istioNamespace, name: 'mixer-ilb' },
  };
}

/** `NAME` (in `defaultNamespace`) or `NS/NAME`. */
export function parseServiceRef(text: string, defaultNamespace: string): ServiceRef | undefined {
  const [a, b, ...rest] = text.split('/');
  if (rest.length > 0) return undefined;
  if (b === undefined)
    return DNS_1123_LABEL.test(a!) ? { namespace: defaultNamespace, name: a! } : undefined;
  return DNS_1123_LABEL.test(a!) && DNS_1123_LABEL.test(b) ? { namespace: a!, name: b } : undefined;
}

/**
 * The Services to look addresses up in: 1.0's (defaultIlbs), each replaced by the
 * `--<role>-service [NS/]NAME` given for it; a NAME alone is in the role's own namespace
 * (kube-system for dns, the Istio namespace for the others). Returns the problem for a bad one.
 */
export function ilbServices(
  istioNamespace: string,
  overrides: Partial<Readonly<Record<IlbRole, string>>>,
): Record<IlbRole, ServiceRef> | string {
  const ilbs = defaultIlbs(istioNamespace);
  for (const role of ILB_ROLES) {
    const text = overrides[role];
    if (text === undefined) continue;
    const ref = parseServiceRef(text, ilbs[role].namespace);
    if (!ref) return `--${role}-service "${text}" is not [NAMESPACE/]NAME`;
    ilbs[role] = ref;
  }
  return ilbs;
}

const WHAT: Record<IlbRole, string> = {
  dns: 'kube-dns',
  pilot: 'Pilot',
  citadel: 'Citadel',
  mixer: 'Mixer',
};

/** The port a VM uses on each, when the Service has several (1.0's mesh-expansion.yaml). */
const PREFERRED_PORT: Record<IlbRole, number> = {
  dns: 53,
  pilot: 15011,
  citadel: 8060,
  mixer: 15004,
};

/** An address given by hand (`--pilot-ip` …) instead of looked up. */
export interface GivenAddress {
  readonly ip: string;
  readonly port: number;
  /** The flag it was given with, for the variable's comment. */
  readonly flag: string;
}

/**
 * The address given for `role` with its flag: `--dns-server IP[:PORT]` (port 53 unless given,
 * `[v6]:PORT` for IPv6), `--pilot-ip IP`, `--citadel-ip IP`, `--mixer-ip IP`, reached on the
 * port a VM uses on that load balancer (1.0's mesh-expansion.yaml). An IP address, strictly.
 * Returns the problem as text.
 */
export function givenAddress(role: IlbRole, text: string): GivenAddress | string {
  const flag = addressFlag(role);
  if (role !== 'dns')
    return ipProblem(flag, text) ?? { ip: text, port: PREFERRED_PORT[role], flag };
  const hp = parseHostPort(text, { defaultPort: PREFERRED_PORT.dns });
  const ip = hp.ok ? hp.host : (hp.host ?? text);
  const problem = ipProblem(flag, ip);
  if (problem !== undefined) return problem;
  if (!hp.ok)
    return hp.problem === 'port'
      ? `${flag} "${text}": bad port`
      : `${flag} "${text}" is not IP[:PORT]`;
  return { ip, port: hp.port, flag };
}

export interface IlbAddress {
  readonly role: IlbRole;
  readonly ip: string;
  readonly port: number;
  /** `istio-system/citadel-ilb`, or `--citadel-ip` when given by hand. */
  readonly from: string;
  readonly given: boolean;
}

/** The Service's load-balancer address: `ip`, `hostname` (no IP), or nothing yet. */
export function loadBalancerAddress(svc: Service): { ip?: string; hostname?: string } {
  for (const i of svc.status?.loadBalancer?.ingress ?? []) {
    if (i.ip) return { ip: i.ip };
  }
  const h = svc.status?.loadBalancer?.ingress?.find((i) => i.hostname)?.hostname;
  return h ? { hostname: h } : {};
}

function servicePort(svc: Service, role: IlbRole): number {
  const ports = svc.spec?.ports ?? [];
  return (
    (ports.find((p) => p.port === PREFERRED_PORT[role]) ?? ports[0])?.port ?? PREFERRED_PORT[role]
  );
}

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly clock: Clock;
  /** One line per Service still without an address, each round. */
  readonly progress: (line: string) => void;
}

/**
 * Looks the Services up and waits for their load-balancer addresses. A missing Service, or one
 * that is not of type LoadBalancer, fails at once (it would never get an address); a hostname
 * instead of an IP fails too (dnsmasq needs addresses).
 */
export async function waitForIlbs(
  api: KubeApi,
  wanted: Partial<Record<IlbRole, ServiceRef>>,
  o: WaitOptions,
): Promise<Partial<Record<IlbRole, IlbAddress>>> {
  const found: Partial<Record<IlbRole, IlbAddress>> = {};
  const start = o.clock.now();
  for (;;) {
    const pending: string[] = [];
    for (const role of ILB_ROLES) {
      const ref = wanted[role];
      if (!ref || found[role]) continue;
      const where = `${ref.namespace}/${ref.name}`;
      const svc = await kubeCall(api.target, () => api.getService(ref.namespace, ref.name));
      if (!svc) {
        throw new AgentError(
          'AGENT_E_CLUSTER_NOT_FOUND',
          `Service ${where} (${WHAT[role]} for VMs) not found: Istio 1.0 made it with install/kubernetes/mesh-expansion.yaml; create it, name another with --${role}-service, or give the address with ${addressFlag(role)}`,
        );
      }
      const type = svc.spec?.type ?? 'ClusterIP';
      if (type !== 'LoadBalancer') {
        throw new AgentError(
          'AGENT_E_CLUSTER_API',
          `Service ${where} is of type ${type}, so it never gets a load-balancer address; make it type LoadBalancer (internal) or give the address with ${addressFlag(role)}`,
        );
      }
      const addr = loadBalancerAddress(svc);
      if (addr.ip !== undefined) {
        found[role] = {
          role,
          ip: addr.ip,
          port: servicePort(svc, role),
          from: where,
          given: false,
        };
        continue;
      }
      if (addr.hostname !== undefined) {
        throw new AgentError(
          'AGENT_E_CLUSTER_API',
          `Service ${where} has the load-balancer hostname ${addr.hostname}, not an IP address; dnsmasq needs addresses: give it with ${addressFlag(role)}`,
        );
      }
      pending.push(where);
    }
    if (pending.length === 0) return found;
    const waited = o.clock.now() - start;
    if (waited >= o.timeoutMs) {
      throw new AgentError(
        'AGENT_E_CLUSTER_TIMEOUT',
        `no load-balancer address after ${formatDuration(waited)} for ${pending.join(', ')}; check the cloud's load-balancer controller (kubectl describe service), raise --wait, or give the addresses by hand`,
      );
    }
    const waitedS = formatDuration(Math.floor(waited / 1000) * 1000);
    for (const p of pending) {
      o.progress(
        `${p}: no load-balancer address yet (waited ${waitedS} of ${formatDuration(o.timeoutMs)}; next look in ${formatDuration(o.intervalMs)})`,
      );
    }
    await o.clock.sleep(Math.min(o.intervalMs, Math.max(0, o.timeoutMs - waited)));
  }
}

/** The flag that gives `role`'s address by hand: `--dns-server`, `--pilot-ip` …. */
export function addressFlag(role: IlbRole): string {
  return role === 'dns' ? '--dns-server' : `--${role}-ip`;
}

/** `ip`, `ip:port` or `[ip]:port` as ISTIO_DNS_SERVER and CITADEL_ADDRESS take them. */
export function hostPort(ip: string, port: number, omitPort?: number): string {
  if (port === omitPort) return ip;
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The agent's DNS variables (docs/configuration.md, "Cluster DNS"), with their sources. */
export function dnsEntries(a: Partial<Record<IlbRole, IlbAddress>>): EnvEntry[] {
  const src = (x: IlbAddress, what: string): string =>
    x.given ? `${what}: given with ${x.from}` : `${what}: the load-balancer address of ${x.from}`;
  const out: EnvEntry[] = [];
  if (a.dns)
    out.push({
      key: 'ISTIO_DNS_SERVER',
      value: hostPort(a.dns.ip, a.dns.port, 53),
      source: src(a.dns, 'the cluster DNS (kube-dns) for svc.<domain> names'),
    });
  if (a.pilot)
    out.push({
      key: 'ISTIO_PILOT_IP',
      value: a.pilot.ip,
      source: src(a.pilot, 'Pilot (istio-pilot)'),
    });
  if (a.citadel)
    out.push({
      key: 'ISTIO_CITADEL_IP',
      value: a.citadel.ip,
      source: src(a.citadel, 'Citadel (istio-citadel, istio-ca)'),
    });
  if (a.mixer)
    out.push({
      key: 'ISTIO_MIXER_IP',
      value: a.mixer.ip,
      source: src(a.mixer, 'Mixer (istio-policy, istio-telemetry)'),
    });
  return out;
}

/** Istio 1.0's `kubedns` file for /etc/dnsmasq.d, from the same addresses. */
export function renderKubedns10(
  a: Partial<Record<IlbRole, IlbAddress>>,
  istioNamespace: string,
  clusterDomain: string,
): string {
  const lines = kubednsRecords({
    dnsServer: a.dns
      ? { address: a.dns.ip, family: isIP(a.dns.ip) === 6 ? 6 : 4, port: a.dns.port }
      : undefined,
    clusterDomain,
    systemNamespace: istioNamespace,
    pilotIp: a.pilot?.ip,
    citadelIp: a.citadel?.ip,
    mixerIp: a.mixer?.ip,
  });
  return (
    [
      '# kubedns for /etc/dnsmasq.d (Istio 1.0 generateDnsmasq), written by istio-node-agent cluster dns.',
      '# istio-node-agent does the same from the ISTIO_*_IP variables; use this file only without it.',
      ...lines,
    ].join('\n') + '\n'
  );
}
