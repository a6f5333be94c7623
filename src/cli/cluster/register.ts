/**
 * `cluster register SERVICE IP [name:]port…` and `cluster deregister SERVICE IP` (Istio 1.0's
 * `istioctl register`/`deregister`): the Service, Endpoints and EndpointSlices are changed by
 * cluster/register.ts; this prints what it did.
 */
import {
  deregister,
  ipProblem,
  parseKeyValues,
  parsePortSpecs,
  register,
  serviceNameProblem,
  type RegisterResult,
} from '../../cluster/index';
import { systemClock } from '../../lib/clock';
import { EXIT_OK } from '../../lib/errors';
import type { CommandContext } from '../context';
import {
  COMMON,
  connect,
  namespaceOf,
  orUsage,
  printJson,
  refuse,
  str,
  usage,
  type Values,
  type Verb,
} from './options';

/** SERVICE and IP, the first two arguments of both verbs. */
function serviceAndIp(
  verb: string,
  svc: string | undefined,
  ip: string | undefined,
): { service: string; ip: string } {
  if (svc === undefined) throw usage(verb, 'SERVICE is required');
  refuse(verb, serviceNameProblem(svc));
  if (ip === undefined) throw usage(verb, 'IP is required');
  return { service: svc, ip };
}

function printRegister(ctx: CommandContext, what: string, r: RegisterResult, json: boolean): void {
  if (json) {
    printJson(ctx, r);
    return;
  }
  const s = r.slices;
  const slices = [
    s.created.length && `created ${s.created.join(', ')}`,
    s.updated.length && `updated ${s.updated.join(', ')}`,
    s.deleted.length && `deleted ${s.deleted.join(', ')}`,
    s.unchanged.length && `unchanged ${s.unchanged.join(', ')}`,
  ].filter(Boolean);
  ctx.out(`${what}\n`);
  ctx.out(
    `  Service: ${r.service}${r.ports.length ? ` (ports ${r.ports.map((p) => `${p.name}:${p.port}`).join(', ')})` : ''}\n`,
  );
  ctx.out(`  Endpoints: ${r.endpoints}; addresses now: ${r.addresses.join(', ') || 'none'}\n`);
  ctx.out(`  EndpointSlices: ${slices.join('; ') || 'none'}\n`);
  if (r.conflicts > 0)
    ctx.out(`  ${r.conflicts} conflicting change(s) by others, retried with the fresh objects\n`);
}

async function registerCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const [svcArg, ipArg, ...portArgs] = pos;
  const { service, ip } = serviceAndIp('register', svcArg, ipArg);
  refuse('register', ipProblem('IP', ip));
  const ports = orUsage('register', parsePortSpecs(portArgs));
  const labels = orUsage('register', parseKeyValues('-l', (v.label as string[]) ?? []));
  const annotations = orUsage('register', parseKeyValues('-a', (v.annotation as string[]) ?? []));
  const sa = str(v, 'serviceaccount') ?? 'default';
  const api = await connect(v, ctx);
  const namespace = namespaceOf(v, api);
  const r = await register(
    api,
    { namespace, service, ip, ports, labels, annotations, serviceAccount: sa },
    { clock: systemClock, random: Math.random },
  );
  printRegister(ctx, `registered ${ip} in ${namespace}/${service}`, r, v.json === true);
  return EXIT_OK;
}

async function deregisterCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const [svcArg, ipArg, ...extra] = pos;
  const { service, ip } = serviceAndIp('deregister', svcArg, ipArg);
  if (extra.length > 0) throw usage('deregister', `unexpected argument "${extra[0]}"`);
  refuse('deregister', ipProblem('IP', ip));
  const api = await connect(v, ctx);
  const namespace = namespaceOf(v, api);
  const r = await deregister(
    api,
    { namespace, service, ip },
    { clock: systemClock, random: Math.random },
  );
  const what =
    r.endpoints === 'updated'
      ? `deregistered ${ip} from ${namespace}/${service}`
      : `${ip} is not registered in ${namespace}/${service}: nothing to do`;
  printRegister(ctx, what, r, v.json === true);
  return EXIT_OK;
}

export const REGISTER: Verb = {
  options: {
    ...COMMON,
    label: { type: 'string', short: 'l', multiple: true },
    annotation: { type: 'string', short: 'a', multiple: true },
    serviceaccount: { type: 'string', short: 's' },
  },
  run: registerCmd,
};

export const DEREGISTER: Verb = { options: COMMON, run: deregisterCmd };
