import { families, trySave, type BackendName, type LiveState } from './backend';
import { restore, type CaptureIo, type Transaction } from './io';
import { emptyWithoutOurs, parseSave, transaction } from './live';
import type { FamilyPlan, IpFamily } from './plan';
import { deleteEntry, entryCommand, entryKey, presentEntries } from './routing';
import { readRecord, writeRecord } from './state';

export interface CleanResult {
  readonly backend: BackendName;
  readonly changed: boolean;
  readonly transactions: readonly Transaction[];
  readonly tablesRemoved: readonly string[];
  readonly routingRemoved: readonly string[];
}

const NOTHING = (family: IpFamily): FamilyPlan => ({ family, tables: [] });

/**
 * Removes exactly what we added: our jumps and chains (one transaction per family), nft tables
 * that only existed because of us and are empty again, and the routing entries we recorded.
 */
export async function cleanCapture(io: CaptureIo, live: LiveState): Promise<CleanResult> {
  const record = await readRecord(io.stateDir);
  const txs: Transaction[] = [];
  for (const f of families(live)) {
    const input = transaction(NOTHING(f), live.tables.get(f) ?? []);
    if (input !== undefined) txs.push({ family: f, input });
  }
  await Promise.all(txs.map((tx) => restore(io, live.backend, tx)));

  const tablesRemoved: string[] = [];
  if (live.backend === 'nft') {
    for (const f of [4, 6] as const) {
      const mine = record.createdTables.filter((t) => t.family === f);
      if (mine.length === 0) continue;
      const text = await trySave(io.exec, 'nft', f);
      if (text === undefined) continue;
      const now = parseSave(text);
      for (const { table } of mine) {
        const t = now.find((x) => x.name === table);
        if (!t || !emptyWithoutOurs(t) || t.rules.length > 0) continue;
        const fam = f === 4 ? 'ip' : 'ip6';
        try {
          const r = await io.exec('nft', ['delete', 'table', fam, table]);
          if (r.code === 0) tablesRemoved.push(`${fam} ${table}`);
        } catch {
          /* nft not installed: the empty table stays; it changes nothing */
        }
      }
    }
  }

  const routingRemoved: string[] = [];
  if (record.routing.length > 0) {
    const present = await presentEntries(io.exec, record.routing);
    // In reverse order of adding (the iptables rules that marked packets are already gone).
    for (const e of [...record.routing].reverse()) {
      if (!present.has(entryKey(e))) continue;
      await deleteEntry(io.exec, e);
      routingRemoved.push(entryCommand(e, 'del'));
    }
  }
  await writeRecord(io.stateDir, {
    version: 1,
    backend: undefined,
    families: [],
    createdTables: [],
    routing: [],
  });
  return {
    backend: live.backend,
    changed: txs.length > 0 || tablesRemoved.length > 0 || routingRemoved.length > 0,
    transactions: txs,
    tablesRemoved,
    routingRemoved,
  };
}
