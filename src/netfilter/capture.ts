import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import {
  detectBackend,
  readWith,
  restoreCommand,
  RESTORE_ARGS,
  trySave,
  type BackendName,
  type ReadOptions,
} from './backend';
import {
  diffFamily,
  emptyWithoutOurs,
  parseSave,
  transaction,
  type DiffItem,
  type SavedTable,
} from './live';
import type { CaptureConfig } from '../config/types';
import {
  familyName,
  planCapture,
  wantsIpv6,
  type CapturePlan,
  type FamilyPlan,
  type IpFamily,
} from './plan';
import {
  addEntry,
  deleteEntry,
  entriesOf,
  entryCommand,
  entryKey,
  presentEntries,
  type RoutingEntry,
} from './routing';
import { readRecord, sameRecord, writeRecord, type CaptureRecord } from './state';
import { resolveProxyIds, type ResolvedIds } from '../host/users';

/**
 * The host side of capture: read the live rules, apply a plan, clean, diff. Every program runs
 * through the injected Exec (tests run them inside a network namespace).
 */

export interface CaptureIo {
  readonly exec: Exec;
  /** The agent's state directory (records what clean must undo besides our chains). */
  readonly stateDir: string;
}

export interface LiveState {
  readonly backend: BackendName;
  /** Why this backend was chosen. */
  readonly reason: string;
  /** The saved tables of each family this host can program (6 is absent without ip6tables). */
  readonly tables: ReadonlyMap<IpFamily, readonly SavedTable[]>;
}

export function families(live: LiveState): IpFamily[] {
  return [...live.tables.keys()].sort();
}

/** Detects (or uses) the backend and reads the tables (both families unless told otherwise). */
export async function readLive(
  io: CaptureIo,
  want: 'auto' | BackendName,
  opts: ReadOptions = {},
): Promise<LiveState> {
  return detectBackend(io.exec, want, opts);
}

/** Reads both families with a known backend (the daemon's periodic check). */
export async function readLiveWith(
  io: CaptureIo,
  backend: BackendName,
  reason: string,
): Promise<LiveState> {
  return readWith(io.exec, backend, reason);
}

export interface Prepared {
  readonly live: LiveState;
  readonly plan: CapturePlan;
  readonly resolved: ResolvedIds;
}

/**
 * Reads the live rules and, side by side, looks up the proxy user; then plans for the families
 * the host can program. Changes nothing. A configured ENVOY_USER that does not exist rejects
 * with AGENT_E_USER_UNKNOWN (exit 78).
 */
export async function prepare(
  io: CaptureIo,
  cfg: CaptureConfig,
  want: 'auto' | BackendName = cfg.backend,
  opts: PrepareOptions = {},
): Promise<Prepared> {
  // ip6tables is read unless nothing of ours can be there: the config wants no IPv6 and the
  // state record says no earlier apply put rules there. (diff, clean and the daemon's checks
  // always read both.)
  const ipv6 =
    !opts.skipUnusedIpv6 || wantsIpv6(cfg) || (await readRecord(io.stateDir)).families.includes(6);
  const [resolved, live] = await Promise.all([
    resolveProxyIds(cfg, io.exec),
    readLive(io, want, { ipv6 }),
  ]);
  return { live, resolved, plan: planCapture(cfg, resolved.ids, families(live)) };
}

export interface PrepareOptions {
  /** Skip ip6tables when no IPv6 rule of ours can exist (the CLI's `apply`, to start fewer programs). */
  readonly skipUnusedIpv6?: boolean;
}

export interface Transaction {
  readonly family: IpFamily;
  readonly input: string;
}

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

async function restore(io: CaptureIo, backend: BackendName, tx: Transaction): Promise<void> {
  const cmd = restoreCommand(backend, tx.family);
  const r = await io.exec(cmd, RESTORE_ARGS, { input: tx.input, timeoutMs: 30_000 });
  if (r.code !== 0) {
    throw new AgentError(
      'AGENT_E_IPTABLES_APPLY',
      `${cmd} refused the ${familyName(tx.family)} rules, which are unchanged: ${r.stderr.trim().split('\n')[0] ?? ''}`,
      { details: { cmd, code: r.code, stderr: r.stderr, input: tx.input } },
    );
  }
}

/** Tables a transaction writes into that do not exist yet (nft only: those we can remove again). */
function newTables(
  backend: BackendName,
  txs: readonly Transaction[],
  live: LiveState,
): { family: IpFamily; table: string }[] {
  if (backend !== 'nft') return [];
  const out: { family: IpFamily; table: string }[] = [];
  for (const tx of txs) {
    const have = new Set((live.tables.get(tx.family) ?? []).map((t) => t.name));
    for (const m of tx.input.matchAll(/^\*(\S+)$/gm))
      if (!have.has(m[1]!)) out.push({ family: tx.family, table: m[1]! });
  }
  return out;
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
  const planned = plan.routing.flatMap(entriesOf);
  const plannedKeys = new Set(planned.map(entryKey));
  const stale = record.routing.filter((e) => !plannedKeys.has(entryKey(e)));
  const present =
    planned.length + stale.length > 0
      ? await presentEntries(io.exec, [...planned, ...stale])
      : new Set<string>();
  const toAdd = planned.filter((e) => !present.has(entryKey(e)));
  const txs = pendingTransactions(plan, live);

  const created = newTables(live.backend, txs, live);
  // Families that may hold our rules afterwards: those planned with rules, plus any in the
  // record that this run did not read.
  const inspected = families(live);
  const familiesAfter = [
    ...new Set([
      ...record.families.filter((f) => !inspected.includes(f)),
      ...plan.families.filter((fp) => fp.tables.length > 0).map((fp) => fp.family),
    ]),
  ].sort();
  const intent: CaptureRecord = {
    version: 1,
    backend: live.backend,
    families: familiesAfter,
    createdTables: uniqueTables([...record.createdTables, ...created]),
    routing: [
      ...record.routing.filter((e) => !toAdd.some((a) => entryKey(a) === entryKey(e))),
      ...toAdd,
    ],
  };
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

function uniqueTables(
  xs: readonly { family: IpFamily; table: string }[],
): { family: IpFamily; table: string }[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = `${x.family}/${x.table}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

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

/** Live versus plan. Empty = in sync. */
export async function diffLive(
  io: CaptureIo,
  plan: CapturePlan,
  live: LiveState,
): Promise<DiffItem[]> {
  const items = plan.families.flatMap((fp) => diffFamily(fp, live.tables.get(fp.family) ?? []));
  const planned = plan.routing.flatMap(entriesOf);
  const plannedKeys = new Set(planned.map(entryKey));
  const record = await readRecord(io.stateDir);
  const stale = record.routing.filter((e) => !plannedKeys.has(entryKey(e)));
  if (planned.length + stale.length === 0) return items;
  const present = await presentEntries(io.exec, [...planned, ...stale]);
  const item = (e: RoutingEntry, kind: 'routing-missing' | 'routing-extra'): DiffItem => ({
    family: e.family,
    table: 'routing',
    kind,
    chain: e.kind,
    ...(kind === 'routing-missing'
      ? { planned: [entryCommand(e, 'add')] }
      : { live: [entryCommand(e, 'add')] }),
  });
  for (const e of planned) if (!present.has(entryKey(e))) items.push(item(e, 'routing-missing'));
  for (const e of stale) if (present.has(entryKey(e))) items.push(item(e, 'routing-extra'));
  return items;
}

/** One line per difference, `-`/`+` style, for humans. */
export function formatDiff(items: readonly DiffItem[]): string {
  const lines: string[] = [];
  for (const d of items) {
    const where = `${familyName(d.family)} ${d.table}`;
    switch (d.kind) {
      case 'chain-missing':
        lines.push(
          `${where}: chain ${d.chain} missing`,
          ...(d.planned ?? []).map((r) => `+ -A ${d.chain} ${r}`),
        );
        break;
      case 'chain-extra':
        lines.push(
          `${where}: chain ${d.chain} not planned`,
          ...(d.live ?? []).map((r) => `- -A ${d.chain} ${r}`),
        );
        break;
      case 'chain-differs':
        lines.push(
          `${where}: chain ${d.chain} differs`,
          ...lineDiff(d.live ?? [], d.planned ?? []).map((x) => `${x.op} -A ${d.chain} ${x.rule}`),
        );
        break;
      case 'jump-missing':
        lines.push(`${where}: jump missing`, `+ -A ${d.chain} ${d.planned?.[0] ?? ''}`);
        break;
      case 'jump-extra':
        lines.push(
          `${where}: jump not planned (or duplicated)`,
          `- -A ${d.chain} ${d.live?.[0] ?? ''}`,
        );
        break;
      case 'routing-missing':
        lines.push(`${where}: ${d.chain} missing`, `+ ${d.planned?.[0] ?? ''}`);
        break;
      case 'routing-extra':
        lines.push(`${where}: ${d.chain} no longer planned`, `- ${d.live?.[0] ?? ''}`);
        break;
    }
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/** The rules only in `live` ("-") or only in `planned` ("+"), in order (longest common subsequence). */
export function lineDiff(
  live: readonly string[],
  planned: readonly string[],
): { op: '-' | '+'; rule: string }[] {
  const n = live.length;
  const m = planned.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] =
        live[i] === planned[j]
          ? lcs[i + 1]![j + 1]! + 1
          : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: { op: '-' | '+'; rule: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && live[i] === planned[j]) {
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      out.push({ op: '+', rule: planned[j++]! });
    } else {
      out.push({ op: '-', rule: live[i++]! });
    }
  }
  return out;
}
