import type { LiveState } from './backend';
import type { CaptureIo } from './io';
import { diffFamily, type DiffItem } from './live';
import type { CapturePlan } from './plan';
import { entryCommand, entryKey, presentEntries, routingDelta, type RoutingEntry } from './routing';
import { readRecord } from './state';

/**
 * Pure: the routing differences: planned entries that are missing, and recorded entries no
 * longer planned that are still there. `present` holds the entryKey of each entry found.
 */
export function routingDiff(
  planned: readonly RoutingEntry[],
  stale: readonly RoutingEntry[],
  present: ReadonlySet<string>,
): DiffItem[] {
  const item = (e: RoutingEntry, kind: 'routing-missing' | 'routing-extra'): DiffItem => ({
    family: e.family,
    table: 'routing',
    kind,
    chain: e.kind,
    ...(kind === 'routing-missing'
      ? { planned: [entryCommand(e, 'add')] }
      : { live: [entryCommand(e, 'add')] }),
  });
  return [
    ...planned.filter((e) => !present.has(entryKey(e))).map((e) => item(e, 'routing-missing')),
    ...stale.filter((e) => present.has(entryKey(e))).map((e) => item(e, 'routing-extra')),
  ];
}

/** Live versus plan: the rules of each family, then TPROXY's routing. Empty = in sync. */
export async function diffLive(
  io: CaptureIo,
  plan: CapturePlan,
  live: LiveState,
): Promise<DiffItem[]> {
  const items = plan.families.flatMap((fp) => diffFamily(fp, live.tables.get(fp.family) ?? []));
  const { planned, stale } = routingDelta(plan, (await readRecord(io.stateDir)).routing);
  if (planned.length + stale.length === 0) return items;
  const present = await presentEntries(io.exec, [...planned, ...stale]);
  return [...items, ...routingDiff(planned, stale, present)];
}
