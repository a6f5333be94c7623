/**
 * `cluster env` (cluster.env, printed or written) and `cluster dns` (the DNS variables, and
 * Istio 1.0's kubedns file): the addresses and the variables come from cluster/vm.ts.
 */
import * as path from 'node:path';
import {
  ILB_ROLES,
  clusterDomainProblem,
  dnsEntries,
  gatherAddresses,
  gatherClusterEnv,
  prepareDir,
  renderEnvFile,
  renderKubedns10,
  writeFiles,
  type WriteOutcome,
} from '../../cluster/index';
import { EXIT_OK } from '../../lib/errors';
import type { CommandContext } from '../context';
import {
  ADDRESS_OPTIONS,
  COMMON,
  ENV_OPTIONS,
  OUTPUT,
  connect,
  namespaceOf,
  outcomes,
  printJson,
  refuse,
  str,
  usage,
  type Values,
  type Verb,
} from './options';
import { addressRequest, envRequest } from './requests';

async function envCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  if (pos.length > 0) throw usage('env', `unexpected argument "${pos[0]}"`);
  const req = envRequest('env', v, ctx);
  const api = await connect(v, ctx);
  const env = await gatherClusterEnv(api, { ...req, namespace: namespaceOf(v, api) });
  for (const n of env.notes) ctx.err(`note: ${n}\n`);
  const dir = str(v, 'output');
  let written: Record<string, WriteOutcome> | undefined;
  if (dir !== undefined) {
    await prepareDir(dir, 0o755);
    written = await writeFiles(
      dir,
      [{ name: 'cluster.env', content: env.text, mode: 0o644 }],
      v.force === true,
    );
  }
  if (v.json)
    printJson(ctx, {
      file: dir && path.join(dir, 'cluster.env'),
      outcome: written?.['cluster.env'],
      variables: env.entries,
      notes: env.notes,
    });
  else if (written) ctx.out(outcomes(dir!, written) + '\n');
  else ctx.out(env.text);
  return EXIT_OK;
}

async function dnsCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  if (pos.length > 0) throw usage('dns', `unexpected argument "${pos[0]}"`);
  const domain = str(v, 'cluster-domain') ?? 'cluster.local';
  refuse('dns', clusterDomainProblem('--cluster-domain', domain));
  const r = addressRequest('dns', v, ctx);
  const api = await connect(v, ctx);
  const addresses = await gatherAddresses(api, ILB_ROLES, r);
  const entries = dnsEntries(addresses);
  const kubedns = str(v, 'kubedns');
  let written: Record<string, WriteOutcome> | undefined;
  if (kubedns !== undefined) {
    const dir = path.dirname(kubedns);
    await prepareDir(dir, 0o755);
    written = await writeFiles(
      dir,
      [
        {
          name: path.basename(kubedns),
          content: renderKubedns10(addresses, r.istioNamespace, domain),
          mode: 0o644,
        },
      ],
      v.force === true,
    );
    if (!v.json) ctx.err(outcomes(dir, written) + '\n');
  }
  if (v.json)
    printJson(ctx, {
      addresses,
      variables: entries,
      kubedns: kubedns && { file: kubedns, outcome: written?.[path.basename(kubedns)] },
    });
  else
    ctx.out(
      renderEnvFile(
        [`DNS variables for cluster.env, from context "${api.target.context}"`],
        entries,
      ),
    );
  return EXIT_OK;
}

export const ENV: Verb = { options: { ...COMMON, ...OUTPUT, ...ENV_OPTIONS }, run: envCmd };

export const DNS: Verb = {
  options: {
    ...COMMON,
    ...ADDRESS_OPTIONS,
    kubedns: { type: 'string' },
    'cluster-domain': { type: 'string' },
    force: { type: 'boolean' },
  },
  run: dnsCmd,
};
