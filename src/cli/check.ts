import * as path from 'node:path';
import { checkExitCode, selfCheck, type CheckItem } from '../selfcheck';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent check [--json] [--state-dir DIR]

A self-check of this host, from the same configuration and with the same validation as \`run\`
(every component's preflight: users, binaries, tools, files, the plans), without starting
anything or changing the host. Then: the certificate set (key matches, chain verifies to
root-cert.pem, time left), the CA (a TLS handshake with the name and root the agent uses), the
GCE metadata server (gcp/auto), the live capture rules against the plan, the DNS drop-in and
the resolver against the plan. Each failure carries its error code (see errors.md). Without
root, what needs root is skipped and says so. The running daemon: see \`status\`.

  --json           the findings as JSON: [{name, status, ok, skipped, detail, code, notes}]
  --state-dir DIR  the agent's state directory (default ISTIO_AGENT_STATE_DIR)
Exit codes: 0 every check passes (or is skipped), 78 a failure is a configuration error (as
\`run\` would exit), 1 another failure.`;

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(
    ctx.argv,
    { ...HELP_OPTION, json: { type: 'boolean' }, 'state-dir': { type: 'string' } },
    USAGE,
  );
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const stateDir = values['state-dir'];
  const env =
    stateDir === undefined
      ? ctx.env
      : { ...ctx.env, ISTIO_AGENT_STATE_DIR: path.resolve(stateDir) };
  const isRoot = (process.geteuid?.() ?? 0) === 0;
  const items = await selfCheck({ env, isRoot });
  if (values.json) {
    ctx.out(JSON.stringify(items.map(jsonItem), null, 2) + '\n');
  } else {
    ctx.out(text(items, isRoot));
  }
  return checkExitCode(items);
}

const WORD: Record<CheckItem['status'], string> = { ok: 'ok  ', fail: 'FAIL', skip: 'skip' };

/** One line per finding (`FAIL capture  … [CODE]`), its notes indented below. */
export function text(items: readonly CheckItem[], isRoot: boolean): string {
  const width = Math.max(...items.map((i) => i.name.length), 8);
  const lines: string[] = [];
  for (const i of items) {
    const code = i.status === 'fail' && i.code ? ` [${i.code}]` : '';
    lines.push(`${WORD[i.status]} ${i.name.padEnd(width)} ${i.detail}${code}`);
    for (const n of i.notes ?? []) lines.push(`     ${' '.repeat(width)} note: ${n}`);
  }
  if (!isRoot && items.some((i) => i.status === 'skip' && i.code === 'AGENT_E_NOT_ROOT'))
    lines.push('Run it as root to check what was skipped.');
  return lines.join('\n') + '\n';
}

function jsonItem(i: CheckItem): Record<string, unknown> {
  return {
    name: i.name,
    status: i.status,
    ok: i.status !== 'fail',
    skipped: i.status === 'skip',
    detail: i.detail,
    ...(i.code !== undefined ? { code: i.code } : {}),
    ...(i.notes !== undefined ? { notes: i.notes } : {}),
  };
}
