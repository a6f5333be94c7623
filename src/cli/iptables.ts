import { loadConfig } from '../config/index';
import type { AgentConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import { exec } from '../lib/exec';
import { withHostLock } from '../lib/lock';
import {
  applyPlan,
  cleanCapture,
  diffLive,
  families,
  familyName,
  formatDiff,
  pendingTransactions,
  planCapture,
  prepare,
  readLive,
  readRecord,
  renderFamily,
  renderPlan,
  resolveProxyIds,
  restoreCommand,
  RESTORE_ARGS,
  routingCommands,
  type CaptureIo,
  type CapturePlan,
  type IpFamily,
  type LiveState,
} from '../netfilter/index';
import { HELP_OPTION, parseOptions, usageError, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent iptables <plan|apply|clean|diff> [--json]

Traffic capture into the sidecar, as Istio 1.0's istio-iptables.sh set it up, from the same
configuration as \`run\` (cluster.env < sidecar.env < environment; see configuration.md in /usr/share/doc/istio-node-agent).

  plan    print the rules as iptables-restore --noflush input; changes nothing
  apply   install or update the rules, one atomic transaction per IP family (root)
  clean   remove everything apply added, and nothing else (root)
  diff    compare the live rules with the plan; exit 0 in sync, 3 when they differ (root)

Run 'istio-node-agent iptables <subcommand> --help' for its options.
Exit codes: 0 ok (diff: in sync), 1 failure (not root: AGENT_E_NOT_ROOT), 2 usage,
3 diff: the live rules differ from the plan, 78 configuration error.`;

const SUB_USAGE: Record<string, string> = {
  plan: `Usage: istio-node-agent iptables plan [--json]

Prints the capture rules the configuration asks for, as iptables-restore --noflush input (one
block per IP family; TPROXY's ip rule/route as comments). Reads the configuration and looks up
ENVOY_USER; changes nothing and does not need root.
  --json   the plan as JSON`,
  apply: `Usage: istio-node-agent iptables apply [--dry-run] [--json]

Brings the host's rules to the plan: creates or rewrites only our chains (ISTIO_*) and our jump
rules, one iptables-restore transaction per IP family, so there is never a moment with half the
rules and every other rule on the host is left as it is. Running it again changes nothing.
With ISTIO_CAPTURE=false it removes our rules instead. Needs root.
  --dry-run   print the transactions that would run, run nothing
  --json      the result as JSON`,
  clean: `Usage: istio-node-agent iptables clean [--json]

Removes exactly what apply added: our jump rules, our chains, nft tables that existed only for
them, and the TPROXY ip rule/route entries recorded in the state directory. Needs root.
  --json   the result as JSON`,
  diff: `Usage: istio-node-agent iptables diff [--json]

Compares the live rules (iptables-save) with the plan; '-' lines are live only, '+' lines are
planned only. Needs root (iptables-save does).
  --json   the differences as JSON
Exit codes: 0 in sync, 3 the rules differ, 1 the comparison failed (not root:
AGENT_E_NOT_ROOT; iptables missing: AGENT_E_IPTABLES_BACKEND), 78 configuration error.`,
};

type Sub = 'plan' | 'apply' | 'clean' | 'diff';

/**
 * `iptables diff`: the live rules differ from the plan. Not 1, which every failure exits with
 * (not root, iptables missing), so a script can tell "differs" from "could not compare".
 */
export const EXIT_DIFFERS = 3;

export async function run(ctx: CommandContext): Promise<number> {
  const [sub, ...rest] = ctx.argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    ctx.out(USAGE + '\n');
    return sub === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(SUB_USAGE, sub)) throw usageError(`unknown subcommand "${sub}"`, USAGE);
  const usage = SUB_USAGE[sub]!;
  const { values } = parseOptions(
    rest,
    {
      ...HELP_OPTION,
      json: { type: 'boolean' },
      ...(sub === 'apply' ? { 'dry-run': { type: 'boolean' } } : {}),
    },
    usage,
  );
  if (values.help) {
    ctx.out(usage + '\n');
    return 0;
  }
  const json = values.json === true;
  const dryRun = (values as { 'dry-run'?: boolean })['dry-run'] === true;

  // Everything is validated before the first program runs: a bad value exits 78, host untouched.
  const { config, warnings } = await loadConfig(ctx.env);
  for (const w of warnings) ctx.err(`warning: ${w}\n`);
  const io: CaptureIo = { exec, stateDir: config.core.stateDir };
  switch (sub as Sub) {
    case 'plan':
      return plan(ctx, config, json);
    case 'apply':
      requireRoot('apply');
      if (dryRun) return apply(ctx, config, io, json, dryRun);
      // A configured ENVOY_USER that does not exist is exit 78 before anything is created.
      if (config.capture.enabled) await resolveProxyIds(config.capture, exec);
      // Read, plan and apply under the state directory's lock: two at once would both see no
      // rules and both add the jumps.
      return withHostLock(config.core.stateDir, 'capture', 'istio-node-agent iptables apply', () =>
        apply(ctx, config, io, json, dryRun),
      );
    case 'clean':
      requireRoot('clean');
      return withHostLock(config.core.stateDir, 'capture', 'istio-node-agent iptables clean', () =>
        clean(ctx, config, io, json),
      );
    case 'diff':
      requireRoot('diff');
      return diff(ctx, config, io, json);
  }
}

function requireRoot(sub: string): void {
  if (process.geteuid?.() !== 0) {
    throw new AgentError(
      'AGENT_E_NOT_ROOT',
      `iptables ${sub} changes or reads the host's netfilter rules; run it as root (sudo)`,
    );
  }
}

function print(ctx: CommandContext, json: boolean, data: unknown, text: string): void {
  ctx.out(json ? JSON.stringify(data, null, 2) + '\n' : text);
}

const NO_RULES = (fams: readonly IpFamily[]): CapturePlan => ({
  families: fams.map((family) => ({ family, tables: [] })),
  routing: [],
  warnings: [],
  ruleCount: 0,
});

/** Resolves the proxy ids and builds the plan for the families given (warnings go to stderr). */
async function buildPlan(
  ctx: CommandContext,
  config: AgentConfig,
  fams: readonly IpFamily[],
): Promise<{ plan: CapturePlan; uid: number; gid: number }> {
  const resolved = await resolveProxyIds(config.capture, exec);
  if (resolved.warning) ctx.err(`warning: ${resolved.warning}\n`);
  const p = planCapture(config.capture, resolved.ids, fams);
  for (const w of p.warnings) ctx.err(`warning: ${w}\n`);
  return { plan: p, uid: resolved.ids.uid, gid: resolved.ids.gid };
}

/** Live rules and the plan for the families the host has (no rules at all when capture is off). */
async function liveAndPlan(
  ctx: CommandContext,
  config: AgentConfig,
  io: CaptureIo,
  want: 'auto' | 'nft' | 'legacy',
  fast = false,
) {
  if (!config.capture.enabled) {
    const live = await readLive(io, want);
    return { live, plan: NO_RULES(families(live)) };
  }
  const {
    live,
    plan: p,
    resolved,
  } = await prepare(io, config.capture, want, {
    skipUnusedIpv6: fast,
  });
  if (resolved.warning) ctx.err(`warning: ${resolved.warning}\n`);
  for (const w of p.warnings) ctx.err(`warning: ${w}\n`);
  return { live, plan: p };
}

async function plan(ctx: CommandContext, config: AgentConfig, json: boolean): Promise<number> {
  if (!config.capture.enabled) {
    print(
      ctx,
      json,
      { enabled: false },
      '# capture is off (ISTIO_CAPTURE=false): apply removes any rules of ours\n',
    );
    return 0;
  }
  const { plan: p, uid, gid } = await buildPlan(ctx, config, [4, 6]);
  const data = {
    enabled: true,
    proxy: { user: config.capture.envoyUser, uid, gid },
    ruleCount: p.ruleCount,
    families: p.families.map((f) => ({
      family: familyName(f.family),
      tables: f.tables,
      restore: renderFamily(f),
    })),
    routing: p.routing.map((r) => ({ ...r, commands: routingCommands(r) })),
    warnings: p.warnings,
  };
  print(ctx, json, data, renderPlan(p));
  return 0;
}

async function apply(
  ctx: CommandContext,
  config: AgentConfig,
  io: CaptureIo,
  json: boolean,
  dryRun: boolean,
): Promise<number> {
  const { live, plan: p } = await liveAndPlan(ctx, config, io, config.capture.backend, true);
  if (dryRun) {
    const txs = pendingTransactions(p, live);
    const text =
      txs.length === 0
        ? `# in sync (${live.backend} backend): nothing to do\n`
        : txs
            .map(
              (t) =>
                `# ${familyName(t.family)}: ${restoreCommand(live.backend, t.family)} ${RESTORE_ARGS.join(' ')}\n${t.input}`,
            )
            .join('');
    print(
      ctx,
      json,
      {
        backend: live.backend,
        transactions: txs.map((t) => ({ family: familyName(t.family), input: t.input })),
      },
      text,
    );
    return 0;
  }
  if (!config.capture.enabled) return clean(ctx, config, io, json, live);
  const r = await applyPlan(io, p, live);
  const summary = r.changed
    ? `capture applied: ${p.ruleCount} rules (${r.backend} backend, ${live.reason}); ${r.transactions.map((t) => familyName(t.family)).join(' and ') || 'no iptables'} changed\n`
    : `capture already in sync: ${p.ruleCount} rules (${r.backend} backend); nothing changed\n`;
  const routing = [
    ...r.routingAdded.map((c) => `  ${c}\n`),
    ...r.routingRemoved.map((c) => `  ${c}\n`),
  ].join('');
  print(
    ctx,
    json,
    {
      backend: r.backend,
      backendReason: live.reason,
      changed: r.changed,
      ruleCount: p.ruleCount,
      families: families(live).map(familyName),
      transactions: r.transactions.map((t) => ({ family: familyName(t.family), input: t.input })),
      routingAdded: r.routingAdded,
      routingRemoved: r.routingRemoved,
      warnings: p.warnings,
    },
    summary + routing,
  );
  return 0;
}

async function clean(
  ctx: CommandContext,
  config: AgentConfig,
  io: CaptureIo,
  json: boolean,
  known?: LiveState,
): Promise<number> {
  const record = await readRecord(io.stateDir);
  const live = known ?? (await readLive(io, record.backend ?? config.capture.backend));
  const r = await cleanCapture(io, live);
  const text = r.changed
    ? `capture removed (${r.backend} backend)${r.tablesRemoved.length ? `; empty tables removed: ${r.tablesRemoved.join(', ')}` : ''}\n` +
      r.routingRemoved.map((c) => `  ${c}\n`).join('')
    : `no capture rules of ours found (${r.backend} backend); nothing changed\n`;
  print(
    ctx,
    json,
    {
      backend: r.backend,
      changed: r.changed,
      transactions: r.transactions.map((t) => ({ family: familyName(t.family), input: t.input })),
      tablesRemoved: r.tablesRemoved,
      routingRemoved: r.routingRemoved,
    },
    text,
  );
  return 0;
}

async function diff(
  ctx: CommandContext,
  config: AgentConfig,
  io: CaptureIo,
  json: boolean,
): Promise<number> {
  const record = await readRecord(io.stateDir);
  const { live, plan: p } = await liveAndPlan(
    ctx,
    config,
    io,
    record.backend ?? config.capture.backend,
  );
  const items = await diffLive(io, p, live);
  const text =
    items.length === 0
      ? `in sync: ${p.ruleCount} rules (${live.backend} backend)\n`
      : formatDiff(items);
  print(ctx, json, { backend: live.backend, inSync: items.length === 0, differences: items }, text);
  return items.length === 0 ? 0 : EXIT_DIFFERS;
}
