/**
 * The flags of `env`, `dns`, `bundle` and `setup` as the domain's requests (cluster/vm.ts),
 * every flag checked before the first cluster call; the namespace comes after (it may be the
 * kubeconfig context's).
 */
import {
  DEFAULT_CP_AUTH,
  DEFAULT_ISTIO_NAMESPACE,
  DEFAULT_SECRET_PREFIX,
  DEFAULT_TRUST_DOMAIN,
  ILB_ROLES,
  addressFlag,
  citadelAddressProblem,
  givenAddress,
  ilbServices,
  inboundPortsProblem,
  isCpAuth,
  parseServiceCidrs,
  type AddressRequest,
  type BundleRequest,
  type EnvRequest,
  type GivenAddress,
  type IlbRole,
} from '../../cluster/index';
import { systemClock } from '../../lib/clock';
import type { CommandContext } from '../context';
import { durationOf, orUsage, refuse, str, usage, type Values } from './options';

/** How long to wait for load-balancer addresses (1.0's 10 minutes). */
const WAIT_MS = 10 * 60_000;

/** `--poll`: how often to look (load balancers, the VM's status); at least every 100 ms. */
export function pollOf(verb: string, v: Values): number {
  return Math.max(100, durationOf(verb, v, 'poll', 5000));
}

export function addressRequest(
  verb: string,
  v: Values,
  ctx: CommandContext,
): AddressRequest & { istioNamespace: string } {
  const istioNamespace = str(v, 'istio-namespace') ?? DEFAULT_ISTIO_NAMESPACE;
  const services: Partial<Record<IlbRole, string>> = {};
  for (const role of ILB_ROLES) services[role] = str(v, `${role}-service`);
  const ilbs = orUsage(verb, ilbServices(istioNamespace, services));
  const given: Partial<Record<IlbRole, GivenAddress>> = {};
  for (const role of ILB_ROLES) {
    const text = str(v, addressFlag(role).slice(2));
    if (text !== undefined) given[role] = orUsage(verb, givenAddress(role, text));
  }
  return {
    istioNamespace,
    ilbs,
    given,
    wait: {
      timeoutMs: durationOf(verb, v, 'wait', WAIT_MS),
      intervalMs: pollOf(verb, v),
      clock: systemClock,
      progress: (line) => {
        ctx.err(`${line}\n`);
      },
    },
  };
}

export function envRequest(
  verb: string,
  v: Values,
  ctx: CommandContext,
): Omit<EnvRequest, 'namespace'> {
  const cpAuth = str(v, 'cp-auth') ?? DEFAULT_CP_AUTH;
  if (!isCpAuth(cpAuth)) throw usage(verb, `--cp-auth must be MUTUAL_TLS or NONE, not "${cpAuth}"`);
  let serviceCidr: string[] | undefined;
  const cidrText = str(v, 'service-cidr');
  if (cidrText !== undefined) {
    const r = parseServiceCidrs(cidrText);
    if (typeof r === 'string') throw usage(verb, `--service-cidr: ${r}`);
    if (r.length === 0) throw usage(verb, '--service-cidr is empty');
    serviceCidr = r;
  }
  const citadelAddress = str(v, 'citadel-address');
  if (citadelAddress !== undefined)
    refuse(verb, citadelAddressProblem('--citadel-address', citadelAddress));
  return {
    ...addressRequest(verb, v, ctx),
    cpAuth,
    cpAuthGiven: str(v, 'cp-auth') !== undefined,
    serviceCidr,
    citadelAddress,
    dns: v['no-dns'] !== true,
  };
}

/** The bundle's request (also `setup`'s). */
export function bundleRequest(
  verb: string,
  v: Values,
  ctx: CommandContext,
  vm: string,
): Omit<BundleRequest, 'namespace'> {
  const ports = str(v, 'ports');
  if (ports !== undefined) refuse(verb, inboundPortsProblem('--ports', ports));
  return {
    ...envRequest(verb, v, ctx),
    vm,
    serviceAccount: str(v, 'service-account') ?? 'default',
    secretPrefix: str(v, 'secret-prefix') ?? DEFAULT_SECRET_PREFIX,
    trustDomain: str(v, 'trust-domain') ?? DEFAULT_TRUST_DOMAIN,
    rootOnly: v['root-only'] === true,
    service: str(v, 'service'),
    inboundPorts: ports,
    now: Date.now(),
  };
}
