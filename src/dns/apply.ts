import * as path from 'node:path';
import { AgentError, toAgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import { ensureParents, restoreState, under, writeRegular, type FileState } from './files';
import { installedDnsmasq, type DnsHost } from './host';
import { Journal, undoChange, type UndoOutcome } from './journal';
import { planDns, type DnsPlan, type DropInAction } from './plan';
import { probeHost, type HostFacts } from './probe';
import { RESOLVED_DROP_IN } from './resolver';
import type { DnsSettings } from './settings';
import { EMPTY_STATE, statePath, type ChangeRecord } from './state';

export interface ApplyResult {
  readonly dropIn: DropInAction;
  /** How dnsmasq was restarted, when the drop-in changed. */
  readonly restarted: string | undefined;
  /** Host paths of resolver files changed now. */
  readonly edited: readonly string[];
  readonly undone: readonly { readonly path: string; readonly outcome: UndoOutcome }[];
}

/**
 * What start checks before anything changes: dnsmasq is installed as a service, the change
 * record is readable, and `dnsmasq --test` accepts the drop-in it would write.
 */
export async function preflightDns(s: DnsSettings, host: DnsHost): Promise<DnsPlan> {
  const control = installedDnsmasq(await host.detectDnsmasq());
  const plan = planDns(s, await probeHost(s, host.root));
  if (plan.dropIn !== 'unchanged') await control.check(plan.content);
  return plan;
}

/**
 * Makes the host match the plan: the drop-in (checked by dnsmasq first, dnsmasq restarted only
 * when it changed, the old one put back if dnsmasq does not come up), then the resolver.
 */
export async function applyDns(
  s: DnsSettings,
  plan: DnsPlan,
  facts: HostFacts,
  host: DnsHost,
  log: Logger,
): Promise<ApplyResult> {
  const control = installedDnsmasq(await host.detectDnsmasq());
  const det = { control };
  const journal = new Journal(statePath(host.root, s.stateDir), facts.state ?? EMPTY_STATE, () =>
    host.now(),
  );

  // Earlier resolver changes this setup does not use any more (the setup or its detection changed).
  const undone: { path: string; outcome: UndoOutcome }[] = [];
  let oldDropInGone = false;
  for (const rec of [...plan.undo].reverse()) {
    const outcome = await undoChange(host.root, rec, log);
    undone.push({ path: rec.path, outcome });
    if (rec.role === 'drop-in' && outcome !== 'already-original' && outcome !== 'left-alone') {
      oldDropInGone = true;
    }
    await journal.drop(rec.path);
  }

  let restarted: string | undefined;
  if (plan.dropIn === 'unchanged' && oldDropInGone) {
    await det.control.restart();
    restarted = det.control.how;
  }
  if (plan.dropIn !== 'unchanged') {
    await det.control.check(plan.content);
    if (plan.dropIn === 'take-over') {
      log.warn(
        { file: plan.dropInPath, state: journal.file },
        `replacing the hand-placed ${plan.dropInPath}; it is kept in ${journal.file} and put back by \`istio-node-agent dns clean\``,
      );
    }
    try {
      await writeRecorded(
        host,
        journal,
        plan.dropInPath,
        'drop-in',
        plan.dropInBefore,
        plan.content,
        { mode: 0o644 },
        undefined,
      );
    } catch (e) {
      throw new AgentError(
        'AGENT_E_IO',
        `cannot write ${plan.dropInPath}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    try {
      await det.control.restart();
      restarted = det.control.how;
    } catch (e) {
      const err = toAgentError(e, 'AGENT_E_DNSMASQ_RESTART');
      log.error(
        { file: plan.dropInPath, err: err.message },
        'dnsmasq did not restart with the new drop-in; putting the previous one back',
      );
      await restoreState(under(host.root, plan.dropInPath), plan.dropInBefore);
      await journal.revert(plan.dropInPath, plan.dropInBefore);
      await det.control.restart().catch(() => undefined);
      throw new AgentError(err.code, `${err.message} (the previous drop-in was put back)`, {
        cause: err,
      });
    }
    log.info(
      { file: plan.dropInPath, action: plan.dropIn, restart: det.control.how },
      `dnsmasq drop-in ${plan.dropIn === 'create' ? 'written' : 'updated'}; dnsmasq restarted`,
    );
  }

  const edited: string[] = [];
  for (const e of plan.resolver.edits) {
    try {
      await writeRecorded(host, journal, e.path, 'resolver', e.before, e.after, e, e.block);
    } catch (err) {
      throw new AgentError(
        'AGENT_E_RESOLVER',
        `cannot change ${e.path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    edited.push(e.path);
    log.info(
      { file: e.path, action: e.action, resolver: plan.resolver.kind },
      `resolver: ${e.action} ${e.path}`,
    );
  }
  if (
    plan.resolver.reloadResolved ||
    undone.some(
      (u) =>
        u.path === RESOLVED_DROP_IN &&
        (u.outcome === 'restored' || u.outcome === 'removed' || u.outcome === 'removed-block'),
    )
  ) {
    await host.resolved.reload();
  }
  await journal.setResolver({ kind: plan.resolver.kind, reason: plan.resolver.reason });
  return { dropIn: plan.dropIn, restarted, edited, undone };
}

/** Creates the missing parents, records the change, then writes the file. */
async function writeRecorded(
  host: DnsHost,
  journal: Journal,
  hostPath: string,
  role: ChangeRecord['role'],
  before: FileState,
  after: string,
  owner: { mode: number; uid?: number | undefined; gid?: number | undefined },
  block: string | undefined,
): Promise<void> {
  const real = under(host.root, hostPath);
  const created = await ensureParents(real);
  await journal.record({
    path: hostPath,
    role,
    before,
    after,
    block,
    createdDirs: created.map((d) => '/' + path.relative(host.root, d)),
  });
  await writeRegular(real, after, {
    mode: owner.mode,
    ...(owner.uid !== undefined && owner.gid !== undefined
      ? { uid: owner.uid, gid: owner.gid }
      : {}),
  });
}
