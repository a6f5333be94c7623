import type { Exec } from '../lib/exec';
import { execOk } from '../lib/exec';
import type { CapturePlan, IpFamily, TproxyRouting } from './plan';

/** One piece of TPROXY's policy routing: the fwmark rule or the local default route. */
export interface RoutingEntry {
  readonly family: IpFamily;
  readonly kind: 'rule' | 'route';
  readonly mark: number;
  readonly table: number;
}

export function entriesOf(r: TproxyRouting): RoutingEntry[] {
  return [
    { family: r.family, kind: 'rule', mark: r.mark, table: r.table },
    { family: r.family, kind: 'route', mark: r.mark, table: r.table },
  ];
}

export function entryKey(e: RoutingEntry): string {
  return e.kind === 'rule'
    ? `${e.family}/rule/${e.mark}/${e.table}`
    : `${e.family}/route/${e.table}`;
}

/**
 * The routing entries the plan wants, and those recorded from an earlier apply that it no longer
 * wants (stale: to remove, and only those, never entries someone else added).
 */
export function routingDelta(
  plan: CapturePlan,
  recorded: readonly RoutingEntry[],
): { planned: RoutingEntry[]; stale: RoutingEntry[] } {
  const planned = plan.routing.flatMap(entriesOf);
  const plannedKeys = new Set(planned.map(entryKey));
  return { planned, stale: recorded.filter((e) => !plannedKeys.has(entryKey(e))) };
}

/** The `ip` arguments after `add`/`del`, e.g. `-4 rule <verb> fwmark 1337 lookup 133`. */
function args(e: RoutingEntry, verb: 'add' | 'del'): string[] {
  const fam = e.family === 4 ? '-4' : '-6';
  if (e.kind === 'rule')
    return [fam, 'rule', verb, 'fwmark', String(e.mark), 'lookup', String(e.table)];
  return [
    fam,
    'route',
    verb,
    'local',
    e.family === 4 ? 'default' : '::/0',
    'dev',
    'lo',
    'table',
    String(e.table),
  ];
}

export function entryCommand(e: RoutingEntry, verb: 'add' | 'del'): string {
  return `ip ${args(e, verb).join(' ')}`;
}

interface IpRuleJson {
  fwmark?: string;
  fwmask?: string;
  table?: string;
}
interface IpRouteJson {
  type?: string;
  dst?: string;
  dev?: string;
}

/** Which of `entries` exist now. Reads `ip rule` once per family and `ip route` once per table. */
export async function presentEntries(
  exec: Exec,
  entries: readonly RoutingEntry[],
): Promise<Set<string>> {
  const present = new Set<string>();
  const families = [...new Set(entries.filter((e) => e.kind === 'rule').map((e) => e.family))];
  const routeTables = [
    ...new Set(entries.filter((e) => e.kind === 'route').map((e) => `${e.family}/${e.table}`)),
  ];
  await Promise.all([
    ...families.map(async (f) => {
      const r = await execOk(exec, 'ip', ['-N', '-j', f === 4 ? '-4' : '-6', 'rule', 'show']);
      const rules = JSON.parse(r.stdout || '[]') as IpRuleJson[];
      for (const e of entries) {
        if (e.kind !== 'rule' || e.family !== f) continue;
        const hit = rules.some(
          (x) =>
            x.fwmark !== undefined &&
            Number(x.fwmark) === e.mark &&
            (x.fwmask === undefined || Number(x.fwmask) === 0xffffffff) &&
            x.table === String(e.table),
        );
        if (hit) present.add(entryKey(e));
      }
    }),
    ...routeTables.map(async (ft) => {
      const [f, t] = ft.split('/');
      // A table that does not exist yet makes `ip route show table` fail: that is "absent".
      const r = await exec('ip', ['-j', f === '4' ? '-4' : '-6', 'route', 'show', 'table', t!]);
      const routes = r.code === 0 ? (JSON.parse(r.stdout || '[]') as IpRouteJson[]) : [];
      const hit = routes.some(
        (x) => x.type === 'local' && (x.dst === 'default' || x.dst === '::/0') && x.dev === 'lo',
      );
      if (hit) present.add(`${f}/route/${t}`);
    }),
  ]);
  return present;
}

export async function addEntry(exec: Exec, e: RoutingEntry): Promise<void> {
  await execOk(exec, 'ip', args(e, 'add'));
}

export async function deleteEntry(exec: Exec, e: RoutingEntry): Promise<void> {
  await execOk(exec, 'ip', args(e, 'del'));
}
