/**
 * What the `cluster` verbs share: their option groups, the parsed values and how a verb reads
 * them, the usage error, the connection to the cluster, and the output of written files.
 */
import * as path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { connectKube, type KubeApi, type WriteOutcome } from '../../cluster/index';
import { parseDuration } from '../../config/index';
import { AgentError } from '../../lib/errors';
import { HELP_OPTION, type CommandContext } from '../context';
import { TOP, USAGES } from './usage';

export const COMMON = {
  ...HELP_OPTION,
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  json: { type: 'boolean' },
} as const;

export const OUTPUT = {
  output: { type: 'string', short: 'o' },
  force: { type: 'boolean' },
} as const;

export const ADDRESS_OPTIONS = {
  'istio-namespace': { type: 'string' },
  'dns-service': { type: 'string' },
  'pilot-service': { type: 'string' },
  'citadel-service': { type: 'string' },
  'mixer-service': { type: 'string' },
  'dns-server': { type: 'string' },
  'pilot-ip': { type: 'string' },
  'citadel-ip': { type: 'string' },
  'mixer-ip': { type: 'string' },
  wait: { type: 'string' },
  poll: { type: 'string' },
} as const;

export const ENV_OPTIONS = {
  ...ADDRESS_OPTIONS,
  'service-cidr': { type: 'string' },
  'cp-auth': { type: 'string' },
  'citadel-address': { type: 'string' },
  'no-dns': { type: 'boolean' },
} as const;

export const CERT_OPTIONS = {
  'root-only': { type: 'boolean' },
  'trust-domain': { type: 'string' },
  'secret-prefix': { type: 'string' },
} as const;

export const BUNDLE_OPTIONS = {
  ...ENV_OPTIONS,
  ...CERT_OPTIONS,
  'service-account': { type: 'string', short: 's' },
  service: { type: 'string' },
  ports: { type: 'string' },
} as const;

/** The parsed options of a verb. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** A verb: its options, and what it does with their values and the positional arguments. */
export interface Verb {
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly run: (ctx: CommandContext, v: Values, pos: string[]) => Promise<number>;
}

/** A usage error (exit 2): the message, then the verb's usage (or the verbs'). */
export function usage(verb: string, msg: string): AgentError {
  return new AgentError('AGENT_E_USAGE', `${msg}\n${USAGES[verb] ?? TOP}`);
}

/** The value a domain parser returned, or its problem (a string) thrown as a usage error. */
export function orUsage<T>(verb: string, r: T | string): T {
  if (typeof r === 'string') throw usage(verb, r);
  return r;
}

/** A domain check's problem, when there is one, thrown as a usage error. */
export function refuse(verb: string, problem: string | undefined): void {
  if (problem !== undefined) throw usage(verb, problem);
}

export function str(v: Values, k: string): string | undefined {
  const x = v[k];
  return typeof x === 'string' ? x : undefined;
}

export function durationOf(verb: string, v: Values, k: string, defMs: number): number {
  const text = str(v, k);
  if (text === undefined) return defMs;
  const ms = parseDuration(text);
  if (ms === undefined) throw usage(verb, `--${k} "${text}" is not a duration (e.g. 30s, 10m)`);
  return ms;
}

export async function connect(v: Values, ctx: CommandContext): Promise<KubeApi> {
  return connectKube({
    kubeconfig: str(v, 'kubeconfig'),
    context: str(v, 'context'),
    env: ctx.env,
  });
}

/** `-n`, else the kubeconfig context's namespace. */
export function namespaceOf(v: Values, api: KubeApi): string {
  return str(v, 'namespace') ?? api.target.namespace;
}

/** One line per file written: `DIR/FILE: created|replaced|unchanged`. */
export function outcomes(dir: string, r: Record<string, WriteOutcome>): string {
  return Object.entries(r)
    .map(([f, o]) => `${path.join(dir, f)}: ${o}`)
    .join('\n');
}

export function printJson(ctx: CommandContext, data: unknown): void {
  ctx.out(JSON.stringify(data, null, 2) + '\n');
}
