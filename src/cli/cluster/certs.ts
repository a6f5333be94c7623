/**
 * `cluster certs SERVICE_ACCOUNT -o DIR`: the bootstrap certificates from the istio.<sa>
 * Secret, checked (cluster/certs.ts), written as cluster/bundle.ts lays them out.
 */
import {
  DEFAULT_SECRET_PREFIX,
  DEFAULT_TRUST_DOMAIN,
  certFiles,
  fetchCerts,
  prepareDir,
  writeFiles,
} from '../../cluster/index';
import { EXIT_OK } from '../../lib/errors';
import type { CommandContext } from '../context';
import {
  CERT_OPTIONS,
  COMMON,
  OUTPUT,
  connect,
  namespaceOf,
  outcomes,
  printJson,
  str,
  usage,
  type Values,
  type Verb,
} from './options';

async function certsCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const [sa, ...extra] = pos;
  if (sa === undefined) throw usage('certs', 'SERVICE_ACCOUNT is required');
  if (extra.length > 0) throw usage('certs', `unexpected argument "${extra[0]}"`);
  const dir = str(v, 'output');
  if (dir === undefined) throw usage('certs', '-o DIR is required');
  const api = await connect(v, ctx);
  const { set, summary } = await fetchCerts(api, {
    namespace: namespaceOf(v, api),
    serviceAccount: sa,
    secretPrefix: str(v, 'secret-prefix') ?? DEFAULT_SECRET_PREFIX,
    trustDomain: str(v, 'trust-domain') ?? DEFAULT_TRUST_DOMAIN,
    rootOnly: v['root-only'] === true,
    now: Date.now(),
  });
  await prepareDir(dir, 0o700);
  const written = await writeFiles(dir, certFiles(set), v.force === true);
  if (v.json) printJson(ctx, { ...summary, dir, files: written });
  else {
    ctx.out(outcomes(dir, written) + '\n');
    ctx.out(
      `${summary.identity ?? `root ${summary.rootSubject}`} (Secret ${summary.secret}): ${summary.validity}\n`,
    );
  }
  return EXIT_OK;
}

export const CERTS: Verb = { options: { ...COMMON, ...OUTPUT, ...CERT_OPTIONS }, run: certsCmd };
