import {
  OUR_CHAINS,
  TABLE_ORDER,
  type FamilyPlan,
  type IpFamily,
  type JumpPlan,
  type TablePlan,
} from './plan';

/**
 * Reading `iptables-save` output and comparing it with a plan. Pure: the text comes in, the
 * differences and the `iptables-restore --noflush` transaction that removes them come out.
 */

export interface SavedRule {
  readonly chain: string;
  /** Everything after `-A <chain> `. */
  readonly spec: string;
}

export interface SavedTable {
  readonly name: string;
  /** Built-in chains and their policies (ACCEPT, DROP). */
  readonly builtins: ReadonlyMap<string, string>;
  /** User-defined chains, ours and the host's. */
  readonly userChains: readonly string[];
  readonly rules: readonly SavedRule[];
}

/** Parses iptables-save output (comments, counters and unknown lines are ignored). */
export function parseSave(text: string): SavedTable[] {
  const tables: SavedTable[] = [];
  let cur:
    | { name: string; builtins: Map<string, string>; userChains: string[]; rules: SavedRule[] }
    | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      cur = { name: line.slice(1), builtins: new Map(), userChains: [], rules: [] };
      tables.push(cur);
    } else if (!cur) {
      continue;
    } else if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      if (name === undefined) continue;
      if (policy === undefined || policy === '-') cur.userChains.push(name);
      else cur.builtins.set(name, policy);
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      cur.rules.push(
        sp < 0 ? { chain: rest, spec: '' } : { chain: rest.slice(0, sp), spec: rest.slice(sp + 1) },
      );
    } else if (line === 'COMMIT') {
      cur = undefined;
    }
  }
  return tables;
}

/** The `-j`/`-g` target of a rule spec, if any. */
export function ruleTarget(spec: string): string | undefined {
  return /(?:^|\s)-[jg]\s+(\S+)/.exec(spec)?.[1];
}

/** What of ours is present in one table. */
export interface OursInTable {
  readonly table: string;
  /** Our chains present, with their rules in order. */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /** Rules in built-in chains that jump to one of our chains. */
  readonly jumps: readonly SavedRule[];
}

export function oursIn(t: SavedTable): OursInTable {
  const chains = new Map<string, string[]>();
  for (const c of t.userChains) if (OUR_CHAINS.has(c)) chains.set(c, []);
  const jumps: SavedRule[] = [];
  for (const r of t.rules) {
    const mine = chains.get(r.chain);
    if (mine) mine.push(r.spec);
    else if (t.builtins.has(r.chain) && OUR_CHAINS.has(ruleTarget(r.spec) ?? '')) jumps.push(r);
  }
  return { table: t.name, chains, jumps };
}

export function hasOurs(o: OursInTable): boolean {
  return o.chains.size > 0 || o.jumps.length > 0;
}

export type DiffKind =
  | 'chain-missing'
  | 'chain-extra'
  | 'chain-differs'
  | 'jump-missing'
  | 'jump-extra'
  | 'routing-missing'
  | 'routing-extra';

export interface DiffItem {
  readonly family: IpFamily;
  /** The iptables table, or `routing` for TPROXY's `ip rule`/`ip route`. */
  readonly table: string;
  readonly kind: DiffKind;
  /** Our chain; for jumps the built-in chain holding the jump; for routing `rule` or `route`. */
  readonly chain: string;
  /** Planned rules (chains) or the planned jump spec. */
  readonly planned?: readonly string[];
  /** Live rules (chains) or the live jump spec. */
  readonly live?: readonly string[];
}

interface TableWork {
  readonly table: string;
  /** Live jump rules to delete, one entry per occurrence. */
  readonly deleteJumps: readonly SavedRule[];
  /** Planned chains to create or rewrite (missing or different). */
  readonly write: readonly {
    name: string;
    rules: readonly string[];
    live: readonly string[] | undefined;
  }[];
  /** Our chains present but not planned. */
  readonly remove: readonly { name: string; live: readonly string[] }[];
  readonly addJumps: readonly JumpPlan[];
}

const EMPTY_TABLE = (table: string): TablePlan => ({
  table: table as TablePlan['table'],
  chains: [],
  jumps: [],
});

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Compares a family's plan with its live tables, table by table. */
function work(fp: FamilyPlan, saved: readonly SavedTable[]): TableWork[] {
  const live = new Map(saved.map((t) => [t.name, oursIn(t)]));
  const names = new Set<string>([
    ...fp.tables.map((t) => t.table),
    ...[...live.values()].filter(hasOurs).map((o) => o.table),
  ]);
  const ordered = [...names].sort((a, b) => rank(a) - rank(b));
  return ordered.map((table) => {
    const plan = fp.tables.find((t) => t.table === table) ?? EMPTY_TABLE(table);
    const have = live.get(table) ?? {
      table,
      chains: new Map<string, readonly string[]>(),
      jumps: [],
    };
    const deleteJumps: SavedRule[] = [];
    const seen = new Set<string>();
    for (const j of have.jumps) {
      const key = `${j.chain} ${j.spec}`;
      const planned = plan.jumps.some((p) => p.chain === j.chain && p.rule === j.spec);
      if (planned && !seen.has(key)) seen.add(key);
      else deleteJumps.push(j);
    }
    const addJumps = plan.jumps.filter((p) => !seen.has(`${p.chain} ${p.rule}`));
    const write = plan.chains
      .filter((c) => {
        const l = have.chains.get(c.name);
        return l === undefined || !sameRules(l, c.rules);
      })
      .map((c) => ({ name: c.name, rules: c.rules, live: have.chains.get(c.name) }));
    const remove = [...have.chains]
      .filter(([name]) => !plan.chains.some((c) => c.name === name))
      .map(([name, rules]) => ({ name, live: rules }));
    return { table, deleteJumps, write, remove, addJumps };
  });
}

function rank(table: string): number {
  const i = TABLE_ORDER.indexOf(table as TablePlan['table']);
  return i < 0 ? TABLE_ORDER.length : i;
}

/** Differences between plan and live, for `diff` and the drift check. Empty = in sync. */
export function diffFamily(fp: FamilyPlan, saved: readonly SavedTable[]): DiffItem[] {
  const items: DiffItem[] = [];
  const family = fp.family;
  for (const w of work(fp, saved)) {
    const table = w.table;
    for (const c of w.write) {
      items.push(
        c.live === undefined
          ? { family, table, kind: 'chain-missing', chain: c.name, planned: c.rules }
          : { family, table, kind: 'chain-differs', chain: c.name, planned: c.rules, live: c.live },
      );
    }
    for (const c of w.remove)
      items.push({ family, table, kind: 'chain-extra', chain: c.name, live: c.live });
    for (const j of w.addJumps)
      items.push({ family, table, kind: 'jump-missing', chain: j.chain, planned: [j.rule] });
    for (const j of w.deleteJumps)
      items.push({ family, table, kind: 'jump-extra', chain: j.chain, live: [j.spec] });
  }
  return items;
}

/**
 * The `iptables-restore --noflush` input that turns the live tables into the planned ones, or
 * undefined when they already match. Within each table, in order: delete stale jumps, flush the
 * chains to rewrite or remove (declaring a chain under --noflush creates or flushes it), delete
 * the chains no longer planned, fill the rewritten chains, add missing jumps. iptables-restore
 * commits each table atomically and checks every table before committing any, so the host
 * never sees half a ruleset. Chains already in sync are not touched (their counters survive).
 */
export function transaction(fp: FamilyPlan, saved: readonly SavedTable[]): string | undefined {
  let s = '';
  for (const w of work(fp, saved)) {
    const lines: string[] = [];
    for (const j of w.deleteJumps) lines.push(`-D ${j.chain} ${j.spec}`);
    for (const c of [...w.write, ...w.remove]) lines.push(`:${c.name} - [0:0]`);
    for (const c of w.remove) lines.push(`-X ${c.name}`);
    for (const c of w.write) for (const r of c.rules) lines.push(`-A ${c.name} ${r}`);
    for (const j of w.addJumps)
      lines.push(j.first ? `-I ${j.chain} 1 ${j.rule}` : `-A ${j.chain} ${j.rule}`);
    if (lines.length > 0) s += `*${w.table}\n${lines.join('\n')}\nCOMMIT\n`;
  }
  return s === '' ? undefined : s;
}

/** A table that would be empty once ours is gone: no other rules or chains, every policy ACCEPT. */
export function emptyWithoutOurs(t: SavedTable): boolean {
  const o = oursIn(t);
  const jumpSet = new Set(o.jumps);
  return (
    [...t.builtins.values()].every((p) => p === 'ACCEPT') &&
    t.userChains.every((c) => OUR_CHAINS.has(c)) &&
    t.rules.every((r) => OUR_CHAINS.has(r.chain) || jumpSet.has(r))
  );
}

/**
 * iptables-save text made comparable: comment lines dropped, counters zeroed. (`iptables-save`
 * after apply + clean equals the text before apply under this normalisation.)
 */
export function normaliseSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}
