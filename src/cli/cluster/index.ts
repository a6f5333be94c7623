/**
 * `istio-node-agent cluster <verb>`: the workstation half of mesh expansion. This file picks the
 * verb and parses its options; each verb's file (env.ts: env and dns; certs.ts; bundle.ts:
 * bundle and setup; register.ts: register and deregister) reads them, calls the domain
 * (src/cluster/) and prints what it returns. Help texts: usage.ts; shared options: options.ts.
 */
import { EXIT_OK } from '../../lib/errors';
import { parseOptions, type CommandContext } from '../context';
import { BUNDLE, SETUP } from './bundle';
import { CERTS } from './certs';
import { DNS, ENV } from './env';
import { usage, type Values, type Verb } from './options';
import { DEREGISTER, REGISTER } from './register';
import { TOP, USAGES } from './usage';

const VERBS: Readonly<Record<string, Verb>> = {
  env: ENV,
  dns: DNS,
  certs: CERTS,
  bundle: BUNDLE,
  setup: SETUP,
  register: REGISTER,
  deregister: DEREGISTER,
};

export async function run(ctx: CommandContext): Promise<number> {
  const [verb, ...rest] = ctx.argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    ctx.out(TOP + '\n');
    return verb === undefined ? 2 : EXIT_OK;
  }
  if (!Object.hasOwn(VERBS, verb)) throw usage('', `unknown verb "${verb}"`);
  const spec = VERBS[verb]!;
  const { values, positionals } = parseOptions(rest, spec.options, USAGES[verb]!);
  if (values.help) {
    ctx.out(`${USAGES[verb]!}\n`);
    return EXIT_OK;
  }
  return spec.run(ctx, values as Values, positionals);
}

/** For tests and docs: every verb's usage text. */
export const CLUSTER_USAGES: Readonly<Record<string, string>> = USAGES;
