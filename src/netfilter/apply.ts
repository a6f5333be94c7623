import { AgentError } from '../lib/errors';
import { families, type BackendName, type LiveState } from './backend';
import { restore, type CaptureIo, type Transaction } from './io';
import { transaction } from './live';
import type { CapturePlan, IpFamily } from './plan';
import {
  addEntry,
  deleteEntry,
  entryCommand,
  entryKey,
  presentEntries,
  routingDelta,
  type RoutingEntry,
} from './routing';
import { readRecord, sameRecord, writeRecord, type CaptureRecord } from './state';

export interface ApplyResult {
  readonly backend: BackendName;
  /** False when everything was already in place (nothing was run). */
  readonly changed: boolean;
  readonly transactions: readonly Transaction[];
  readonly routingAdded: readonly string[];
  readonly routingRemoved: readonly string[];
}

/** The transactions that would bring the live tables to the plan (nothing runs). */
export function pendingTransactions(plan: CapturePlan, live: LiveState): Transaction[] {
  const out: Transaction[] = [];
  for (const fp of plan.families) {
    const input = transaction(fp, live.tables.get(fp.family) ?? []);
    if (input !== undefined) out.push({ family: fp.family, input });
  }
  return out;
}

type CreatedTable = { family: IpFamily; table: string };

/** Tables a transaction writes into that do not exist yet (nft only: those we can remove again). */
export function newTables(
  backend: BackendName,
  txs: readonly Transaction[],
  live: LiveState,
): CreatedTable[] {
  if (backend !== 'nft') return [];
  const out: CreatedTable[] = [];
  for (const tx of txs) {
    const have = new Set((live.tables.get(tx.family) ?? []).map((t) => t.name));
    for (const m of tx.input.matchAll(/^\*(\S+)$/gm))
      if (!have.has(m[1]!)) out.push({ family: tx.family, table: m[1]! });
  }
  return out;
}

function uniqueTables(xs: readonly CreatedTable[]): CreatedTable[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = `${x.family}/${x.table}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Pure: the record written before an apply changes anything, so a crash part-way cannot leak
 * what it adds: the backend, the families that may hold our rules afterwards (those planned with
 * rules, plus any in the record that this run did not read), the nft tables it creates, and the
 * routing entries it is about to add.
 */
export function intentRecord(
  record: CaptureRecord,
  plan: CapturePlan,
  live: LiveState,
  created: readonly CreatedTable[],
  toAdd: readonly RoutingEntry[],
): CaptureRecord {
  const inspected = families(live);
  const familiesAfter = [
    ...new Set([
      ...record.families.filter((f) => !inspected.includes(f)),
      ...plan.families.filter((fp) => fp.tables.length > 0).map((fp) => fp.family),
    ]),
  ].sort();
  return {
    version: 1,
    backend: live.backend,
    families: familiesAfter,
    createdTables: uniqueTables([...record.createdTables, ...created]),
    routing: [
      ...record.routing.filter((e) => !toAdd.some((a) => entryKey(a) === entryKey(e))),
      ...toAdd,
    ],
  };
}

/**
 * Brings the host to the plan: TPROXY routing first (so marked packets have somewhere to go),
 * then one iptables-restore transaction per family (in parallel), then removal of routing
 * entries we added earlier that the plan no longer has. Idempotent: in sync = nothing runs.
 */
export async function applyPlan(
  io: CaptureIo,
  plan: CapturePlan,
  live: LiveState,
): Promise<ApplyResult> {
  const record = await readRecord(io.stateDir);
  const { planned, stale } = routingDelta(plan, record.routing);
  const present =
    planned.length + stale.length > 0
      ? await presentEntries(io.exec, [...planned, ...stale])
      : new Set<string>();
  const toAdd = planned.filter((e) => !present.has(entryKey(e)));
  const txs = pendingTransactions(plan, live);

  const intent = intentRecord(record, plan, live, newTables(live.backend, txs, live), toAdd);
  // Record what we are about to add before adding it, so a crash in between cannot leak it.
  if (!sameRecord(intent, record)) await writeRecord(io.stateDir, intent);
  for (const e of toAdd) {
    try {
      await addEntry(io.exec, e);
    } catch (err) {
      throw new AgentError(
        'AGENT_E_IPTABLES_APPLY',
        `cannot add TPROXY routing (${entryCommand(e, 'add')}): ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
  await Promise.all(txs.map((tx) => restore(io, live.backend, tx)));
  const removed: string[] = [];
  for (const e of stale) {
    if (present.has(entryKey(e))) {
      await deleteEntry(io.exec, e);
      removed.push(entryCommand(e, 'del'));
    }
  }
  const final: CaptureRecord = {
    ...intent,
    routing: intent.routing.filter((e) => !stale.includes(e)),
  };
  if (!sameRecord(final, intent)) await writeRecord(io.stateDir, final);
  return {
    backend: live.backend,
    changed: txs.length > 0 || toAdd.length > 0 || removed.length > 0,
    transactions: txs,
    routingAdded: toAdd.map((e) => entryCommand(e, 'add')),
    routingRemoved: removed,
  };
}
