// The pure decisions of capture's apply and diff (src/netfilter/apply.ts, diff.ts, routing.ts,
// present.ts): which transactions run, which nft tables an apply creates, what is recorded
// before anything changes, and which routing entries differ. No program runs here.
import t from 'tap';
import { testConfig } from '../helpers/config';
import { intentRecord, newTables, pendingTransactions } from '../../src/netfilter/apply';
import type { LiveState } from '../../src/netfilter/backend';
import { routingDiff } from '../../src/netfilter/diff';
import { parseSave, type DiffItem } from '../../src/netfilter/live';
import { planCapture, type CapturePlan, type IpFamily } from '../../src/netfilter/plan';
import { driftLine } from '../../src/netfilter/present';
import { entryKey, routingDelta, type RoutingEntry } from '../../src/netfilter/routing';
import { EMPTY_RECORD, type CaptureRecord } from '../../src/netfilter/state';

const IDS = { uid: 999, gid: 998 };
const REDIRECT = { ISTIO_SERVICE_CIDR: '10.96.0.0/16', ISTIO_INBOUND_PORTS: '8080' };
const TPROXY = {
  ...REDIRECT,
  ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
  ISTIO_INBOUND_TPROXY_MARK: '77',
  ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '100',
};

function plan(vars: Record<string, string>, fams: IpFamily[] = [4]): CapturePlan {
  return planCapture(testConfig(vars).capture, IDS, fams);
}

/** A host whose tables hold nothing of ours: the built-in chains of the tables named. */
function live(
  backend: 'nft' | 'legacy',
  tables: Partial<Record<IpFamily, string[]>>,
  fams: IpFamily[] = [4],
): LiveState {
  const save = (names: string[]) =>
    names.map((n) => `*${n}\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`).join('');
  return {
    backend,
    reason: 'test',
    tables: new Map(fams.map((f) => [f, parseSave(save(tables[f] ?? []))])),
  };
}

const NOTHING_PLANNED: CapturePlan = {
  families: [{ family: 4, tables: [] }],
  routing: [],
  warnings: [],
  ruleCount: 0,
};

void t.test('pendingTransactions: one per family that differs; none when in sync', (t) => {
  const p = plan(REDIRECT, [4, 6]);
  const txs = pendingTransactions(p, live('nft', { 4: ['nat'], 6: ['nat'] }, [4, 6]));
  t.same(
    txs.map((x) => x.family),
    [4],
    'IPv6 is planned without rules: nothing to do there',
  );
  t.match(txs[0]!.input, /^\*nat$/m);
  t.same(pendingTransactions(NOTHING_PLANNED, live('nft', { 4: ['nat'] })), []);
  t.end();
});

void t.test('newTables: nft tables a transaction creates; none with legacy', (t) => {
  const p = plan(TPROXY);
  const txs = pendingTransactions(p, live('nft', { 4: ['nat'] }));
  t.same(newTables('nft', txs, live('nft', { 4: ['nat'] })), [{ family: 4, table: 'mangle' }]);
  t.same(newTables('nft', txs, live('nft', { 4: ['nat', 'mangle'] })), []);
  t.same(
    newTables('legacy', txs, live('legacy', { 4: ['nat'] })),
    [],
    'legacy tables always exist',
  );
  t.end();
});

void t.test('routingDelta and routingDiff: planned, stale, missing and extra entries', (t) => {
  const p = plan(TPROXY);
  const other: RoutingEntry = { family: 4, kind: 'rule', mark: 1337, table: 133 };
  const { planned, stale } = routingDelta(p, [
    other,
    { family: 4, kind: 'route', mark: 77, table: 100 },
  ]);
  t.same(
    planned.map(entryKey),
    ['4/rule/77/100', '4/route/100'],
    'TPROXY: the fwmark rule and the local route',
  );
  t.same(stale, [other], 'only recorded entries the plan no longer has');
  t.same(routingDelta(plan(REDIRECT), []), { planned: [], stale: [] });

  const present = new Set(['4/route/100', entryKey(other)]);
  const items = routingDiff(planned, stale, present);
  t.same(
    items.map((d) => [d.kind, d.chain, d.planned ?? d.live]),
    [
      ['routing-missing', 'rule', ['ip -4 rule add fwmark 77 lookup 100']],
      ['routing-extra', 'rule', ['ip -4 rule add fwmark 1337 lookup 133']],
    ],
  );
  t.same(routingDiff(planned, stale, new Set(['4/rule/77/100', '4/route/100'])), [], 'in sync');
  t.end();
});

void t.test('intentRecord: what is recorded before an apply changes anything', (t) => {
  const p = plan(TPROXY);
  const l = live('nft', { 4: ['nat'] });
  const toAdd: RoutingEntry[] = [{ family: 4, kind: 'rule', mark: 77, table: 100 }];
  const first = intentRecord(EMPTY_RECORD, p, l, [{ family: 4, table: 'mangle' }], toAdd);
  t.same(first, {
    version: 1,
    backend: 'nft',
    families: [4],
    createdTables: [{ family: 4, table: 'mangle' }],
    routing: toAdd,
  });

  // Rules of ours in IPv6 from an earlier apply, not read this time: still possible afterwards.
  const earlier: CaptureRecord = {
    version: 1,
    backend: 'nft',
    families: [4, 6],
    createdTables: [{ family: 4, table: 'mangle' }],
    routing: [
      { family: 4, kind: 'rule', mark: 77, table: 100 },
      { family: 4, kind: 'route', mark: 1, table: 9 },
    ],
  };
  const again = intentRecord(earlier, p, l, [{ family: 4, table: 'mangle' }], toAdd);
  t.same(again.families, [4, 6]);
  t.same(again.createdTables, [{ family: 4, table: 'mangle' }], 'a created table is listed once');
  t.same(
    again.routing.map(entryKey),
    ['4/route/9', '4/rule/77/100'],
    'entries about to be added again are listed once, last',
  );

  const off = intentRecord(
    { ...earlier, families: [4] },
    NOTHING_PLANNED,
    live('legacy', { 4: ['nat'] }, [4, 6]),
    [],
    [],
  );
  t.same(off.families, [], 'nothing planned in the families read: none may hold our rules');
  t.equal(off.backend, 'legacy');
  t.end();
});

void t.test('driftLine: one difference in a few words', (t) => {
  const d: DiffItem = { family: 6, table: 'nat', kind: 'chain-differs', chain: 'ISTIO_OUTPUT' };
  t.equal(driftLine(d), 'ipv6 nat chain-differs ISTIO_OUTPUT');
  t.equal(
    driftLine({ ...d, family: 4, kind: 'jump-missing', chain: 'OUTPUT' }),
    'ipv4 nat jump-missing OUTPUT',
  );
  t.end();
});
