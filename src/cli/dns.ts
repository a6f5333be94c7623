import * as path from 'node:path';
import { systemClock } from '../lib/clock';
import { AgentError, EXIT_OK } from '../lib/errors';
import { exec } from '../lib/exec';
import { withHostLock } from '../lib/lock';
import { createLogger } from '../observe/index';
import {
  applyDns,
  cleanDns,
  dnsSettings,
  installedDnsmasq,
  offNote,
  planDns,
  probeHost,
  systemHost,
  type DnsmasqDetection,
  type DnsPlan,
} from '../dns/index';
import { HELP_OPTION, parseOptions, usageError, type CommandContext } from './context';
import { loadForCommand } from './common';

const USAGE = `Usage: istio-node-agent dns <plan|apply|clean> [--json] [--root DIR]

Cluster DNS through dnsmasq: the drop-in <ISTIO_DNSMASQ_DIR>/kubedns (the lines Istio 1.0's
generateDnsmasq wrote: server=/svc.<domain>/<ISTIO_DNS_SERVER>, address= for istio-pilot,
istio-citadel, istio-ca, istio-policy, istio-telemetry, also with .<ISTIO_SYSTEM_NAMESPACE>),
and the host's resolver pointed at dnsmasq on 127.0.0.1 (ISTIO_DNS_RESOLVER).

  plan    print the drop-in and the resolver change; changes nothing
  apply   write the drop-in (dnsmasq restarted only when it changes) and wire the resolver
  clean   undo what apply did: the resolver files get their original bytes back, the
          drop-in is removed (a hand-placed file it replaced is put back), dnsmasq restarted

Options:
  --json      print the result as JSON
  --root DIR  operate on the files under DIR instead of / (an image being prepared);
              dnsmasq and systemd-resolved on this host are then not restarted
  -h, --help  this text

The daemon applies the same at start and on reload. What apply changed is recorded in
<ISTIO_AGENT_STATE_DIR>/dns-state.json; clean undoes exactly that.`;

const OFF =
  'DNS is off: none of ISTIO_DNS_SERVER, ISTIO_PILOT_IP, ISTIO_CITADEL_IP, ISTIO_MIXER_IP is set';

export async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions(
    ctx.argv,
    { ...HELP_OPTION, json: { type: 'boolean' }, root: { type: 'string' } },
    USAGE,
    { positionals: 1 },
  );
  if (values.help) {
    ctx.out(USAGE + '\n');
    return EXIT_OK;
  }
  const [sub] = positionals;
  if (sub === undefined || !['plan', 'apply', 'clean'].includes(sub)) {
    throw usageError(
      sub === undefined
        ? 'a subcommand is needed: plan, apply or clean'
        : `unknown subcommand "${sub}": expected plan, apply or clean`,
      USAGE,
    );
  }
  const root = path.resolve(values.root ?? '/');
  const json = values.json === true;
  const { config } = await loadForCommand(ctx.env);
  const settings = dnsSettings(config);
  if (sub !== 'plan' && root === '/' && process.getuid?.() !== 0) {
    throw new AgentError(
      'AGENT_E_NOT_ROOT',
      `dns ${sub} changes /etc and restarts dnsmasq: run it as root`,
    );
  }
  const log = createLogger({
    level: 'warn',
    write: (line) => {
      ctx.err(line);
    },
  });
  const host = systemHost(root, exec, () => systemClock.now());
  // The lock lives next to the state it guards: <root>/<ISTIO_AGENT_STATE_DIR>.
  const lockDir = path.join(root, settings.stateDir);

  if (sub === 'clean') {
    const r = await withHostLock(lockDir, 'dns', 'istio-node-agent dns clean', () =>
      cleanDns(settings, host, log),
    );
    if (json) {
      ctx.out(JSON.stringify(r, null, 2) + '\n');
    } else {
      if (r.undone.length === 0)
        ctx.out('nothing to clean: no DNS change by the agent is recorded or in place\n');
      for (const u of r.undone) ctx.out(`${u.path}: ${u.outcome}\n`);
      if (r.restarted !== undefined) ctx.out(`dnsmasq restart: ${r.restarted}\n`);
      for (const n of r.notes) ctx.out(`note: ${n}\n`);
      if (settings.dns.enabled)
        ctx.out(
          'note: DNS variables are still set; the daemon applies them again at its next start or reload\n',
        );
    }
    return EXIT_OK;
  }

  if (!settings.dns.enabled) {
    const note = await offNote(settings, root);
    if (json) {
      ctx.out(JSON.stringify({ enabled: false, note: note?.message }, null, 2) + '\n');
    } else {
      ctx.out(`${OFF}; nothing to do.\n`);
      if (note) ctx.out(`note: ${note.message}\n`);
    }
    return EXIT_OK;
  }

  if (sub === 'plan') {
    const plan = planDns(settings, await probeHost(settings, root));
    const det = await host.detectDnsmasq();
    if (json) ctx.out(JSON.stringify(planJson(plan, det), null, 2) + '\n');
    else ctx.out(planText(plan, det));
    return EXIT_OK;
  }
  // No dnsmasq service is exit 78 before anything is created; then read, plan and apply under
  // the state directory's lock (the daemon takes it too).
  installedDnsmasq(await host.detectDnsmasq());
  const { plan, r } = await withHostLock(lockDir, 'dns', 'istio-node-agent dns apply', async () => {
    const facts = await probeHost(settings, root);
    const plan = planDns(settings, facts);
    return { plan, r: await applyDns(settings, plan, facts, host, log) };
  });
  if (json) {
    ctx.out(
      JSON.stringify(
        {
          ...r,
          names: plan.names,
          resolver: {
            kind: plan.resolver.kind,
            reason: plan.resolver.reason,
            notes: plan.resolver.notes,
          },
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    ctx.out(`${plan.dropInPath}: ${r.dropIn} (${plan.names} names)\n`);
    if (r.restarted !== undefined) ctx.out(`dnsmasq restart: ${r.restarted}\n`);
    ctx.out(`resolver: ${plan.resolver.kind} (${plan.resolver.reason})\n`);
    for (const e of r.edited) ctx.out(`  changed ${e}\n`);
    for (const u of r.undone) ctx.out(`  undid earlier change to ${u.path}: ${u.outcome}\n`);
    if (r.edited.length === 0 && r.undone.length === 0) ctx.out('  nothing to change\n');
    for (const n of plan.resolver.notes) ctx.out(`note: ${n}\n`);
  }
  return EXIT_OK;
}

function indent(text: string): string {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => `  | ${l}`)
    .join('\n');
}

const DROP_IN_WORDS: Record<DnsPlan['dropIn'], string> = {
  create: 'create',
  update: 'update (dnsmasq is restarted)',
  unchanged: 'unchanged (no write, no restart)',
  'take-over':
    'replace the hand-placed file (kept in the state directory; `dns clean` puts it back)',
};

function planText(plan: DnsPlan, det: DnsmasqDetection): string {
  const out: string[] = [];
  out.push(`dnsmasq drop-in ${plan.dropInPath}: ${DROP_IN_WORDS[plan.dropIn]}`);
  out.push(indent(plan.content));
  out.push(
    det.installed
      ? `dnsmasq restart, only when the drop-in changes: ${det.control.how}`
      : `dnsmasq: ${det.why}; apply fails with AGENT_E_DNSMASQ_MISSING (apt-get install dnsmasq)`,
  );
  out.push(`resolver: ${plan.resolver.kind} (${plan.resolver.reason})`);
  if (plan.resolver.edits.length === 0) out.push('  no change');
  for (const e of plan.resolver.edits) {
    switch (e.action) {
      case 'prepend':
        out.push(`  add to the top of ${e.path}:`, indent(e.block ?? ''));
        break;
      case 'append':
        out.push(`  add to the end of ${e.path}:`, indent((e.block ?? '').replace(/^\n/, '')));
        break;
      case 'replace-symlink':
        out.push(
          `  replace the symlink ${e.path} with a file; it starts with:`,
          indent(e.block ?? ''),
          '    followed by the current content',
        );
        break;
      default:
        out.push(`  ${e.action} ${e.path}:`, indent(e.after));
    }
  }
  if (plan.resolver.reloadResolved) out.push('  then systemd-resolved re-reads its configuration');
  for (const u of plan.undo)
    out.push(`  undo the earlier change to ${u.path} (no longer part of this configuration)`);
  for (const n of plan.resolver.notes) out.push(`note: ${n}`);
  return out.join('\n') + '\n';
}

function planJson(plan: DnsPlan, det: DnsmasqDetection): unknown {
  return {
    enabled: true,
    names: plan.names,
    dropIn: { path: plan.dropInPath, action: plan.dropIn, content: plan.content },
    dnsmasq: det.installed
      ? { installed: true, restart: det.control.how }
      : { installed: false, why: det.why },
    resolver: {
      kind: plan.resolver.kind,
      reason: plan.resolver.reason,
      edits: plan.resolver.edits.map((e) => ({
        path: e.path,
        action: e.action,
        block: e.block,
        content: e.after,
      })),
      reloadResolved: plan.resolver.reloadResolved,
      notes: plan.resolver.notes,
    },
    undo: plan.undo.map((u) => u.path),
  };
}
