import { AgentError } from '../lib/errors';
import type { Logger } from '../observe/index';
import { ABSENT, readFileState, restoreState, under } from './files';
import type { DnsHost } from './host';
import { forgetChange, undoChange, type UndoOutcome } from './journal';
import { isManaged } from './render';
import { DHCLIENT_CONF, RESOLVED_DROP_IN } from './resolver';
import { dropInPath, type DnsSettings } from './settings';
import { EMPTY_STATE, readDnsState, statePath, writeDnsState } from './state';

export interface CleanResult {
  readonly undone: readonly { readonly path: string; readonly outcome: UndoOutcome }[];
  /** How dnsmasq was restarted, when the drop-in changed. */
  readonly restarted: string | undefined;
  readonly notes: readonly string[];
}

/** Undoes everything the record names (resolver first), and removes a managed drop-in. */
export async function cleanDns(s: DnsSettings, host: DnsHost, log: Logger): Promise<CleanResult> {
  const file = statePath(host.root, s.stateDir);
  const state = (await readDnsState(file)) ?? EMPTY_STATE;
  const undone: { path: string; outcome: UndoOutcome }[] = [];
  const notes: string[] = [];
  let remaining = state;
  const forget = async (p: string): Promise<void> => {
    remaining = forgetChange(remaining, p);
    await writeDnsState(file, remaining);
  };

  // Resolver first: stop sending queries to dnsmasq before it loses the names.
  let resolvedTouched = false;
  for (const rec of [...state.changes].reverse().filter((c) => c.role === 'resolver')) {
    let outcome: UndoOutcome;
    try {
      outcome = await undoChange(host.root, rec, log);
    } catch (e) {
      throw new AgentError(
        'AGENT_E_RESOLVER',
        `cannot restore ${rec.path}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    undone.push({ path: rec.path, outcome });
    if (rec.path === RESOLVED_DROP_IN && outcome !== 'left-alone' && outcome !== 'already-original')
      resolvedTouched = true;
    if (rec.path === DHCLIENT_CONF && outcome !== 'already-original') {
      notes.push('dhclient writes resolv.conf without 127.0.0.1 from its next lease renewal');
    }
    await forget(rec.path);
  }
  if (resolvedTouched) await host.resolved.reload();

  let dropInChanged = false;
  const dropIns = state.changes.filter((c) => c.role === 'drop-in');
  for (const rec of dropIns) {
    const outcome = await undoChange(host.root, rec, log);
    undone.push({ path: rec.path, outcome });
    if (outcome === 'restored' || outcome === 'removed' || outcome === 'removed-block')
      dropInChanged = true;
    await forget(rec.path);
  }
  // A managed drop-in without a record (state lost, or written by an older agent).
  const current = dropInPath(s);
  if (!dropIns.some((r) => r.path === current)) {
    const cur = await readFileState(under(host.root, current));
    if (cur.kind === 'file' && isManaged(cur.bytes)) {
      await restoreState(under(host.root, current), ABSENT);
      undone.push({ path: current, outcome: 'removed' });
      dropInChanged = true;
    } else if (cur.kind !== 'absent') {
      notes.push(`${current} is not the agent's (no header); left alone`);
    }
  }

  let restarted: string | undefined;
  if (dropInChanged) {
    const det = await host.detectDnsmasq();
    if (det.installed) {
      await det.control.restart({ onlyIfRunning: true });
      restarted = det.control.how;
    } else {
      notes.push(`dnsmasq not restarted: ${det.why}`);
    }
  }
  await writeDnsState(file, { ...remaining, changes: [] });
  return { undone, restarted, notes };
}
