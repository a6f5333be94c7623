import t from 'tap';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  SERVICE_NAME_LABEL,
  addAddress,
  addressCount,
  planSlices,
  removeAddress,
  sliceName,
  slicesFor,
  withServiceAccount,
} from '../../src/cluster/endpoints';
import type { EndpointSubset } from '../../src/cluster/types';

const HTTP = [{ name: 'http', port: 80 }];
const HTTP_GRPC = [
  { name: 'http', port: 80 },
  { name: 'grpc', port: 9090 },
];
const ports = (p: { name: string; port: number }[]) => p.map((x) => ({ ...x, protocol: 'TCP' }));

void t.test(
  'addAddress: a new subset, then the same ports join it, other ports get their own',
  async (t) => {
    let r = addAddress(undefined, '10.0.0.1', HTTP);
    t.ok(r.changed);
    t.same(r.subsets, [{ addresses: [{ ip: '10.0.0.1' }], ports: ports(HTTP) }]);
    r = addAddress(r.subsets, '10.0.0.2', [{ name: 'whatever', port: 80 }]);
    t.same(
      r.subsets[0]!.addresses,
      [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }],
      'matched on the port numbers (1.0)',
    );
    r = addAddress(r.subsets, '10.0.0.3', HTTP_GRPC);
    t.equal(r.subsets.length, 2, 'another port set: a new subset');
    t.same(r.subsets[1], { addresses: [{ ip: '10.0.0.3' }], ports: ports(HTTP_GRPC) });
    const again = addAddress(r.subsets, '10.0.0.2', HTTP);
    t.notOk(again.changed, 'an address already there: unchanged (1.0 appended it twice)');
    t.same(again.subsets, r.subsets);
  },
);

void t.test(
  'addAddress: the port order does not matter; not-ready addresses count as there',
  async (t) => {
    const subsets: EndpointSubset[] = [
      { notReadyAddresses: [{ ip: '10.0.0.9' }], ports: ports([...HTTP_GRPC].reverse()) },
    ];
    t.notOk(addAddress(subsets, '10.0.0.9', HTTP_GRPC).changed);
    const r = addAddress(subsets, '10.0.0.8', HTTP_GRPC);
    t.same(r.subsets[0]!.addresses, [{ ip: '10.0.0.8' }]);
    t.same(subsets[0]!.addresses, undefined, 'the input is not modified');
  },
);

void t.test(
  'removeAddress: from every subset, empty subsets dropped, others kept as they were',
  async (t) => {
    const subsets: EndpointSubset[] = [
      { addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }], ports: ports(HTTP) },
      { addresses: [{ ip: '10.0.0.1' }], ports: ports(HTTP_GRPC) },
      {
        addresses: [{ ip: '10.0.0.3' }],
        notReadyAddresses: [{ ip: '10.0.0.1' }],
        ports: ports([{ name: 'x', port: 1 }]),
      },
    ];
    const r = removeAddress(subsets, '10.0.0.1');
    t.ok(r.changed);
    t.same(r.subsets, [
      { addresses: [{ ip: '10.0.0.2' }], ports: ports(HTTP) },
      {
        addresses: [{ ip: '10.0.0.3' }],
        notReadyAddresses: [],
        ports: ports([{ name: 'x', port: 1 }]),
      },
    ]);
    t.equal(addressCount(r.subsets), 2);
    const none = removeAddress(r.subsets, '10.9.9.9');
    t.notOk(none.changed, 'an address not there: unchanged');
    t.same(
      removeAddress([{ addresses: [{ ip: 'a' }] }], 'a').subsets,
      [],
      'the last address: no subsets',
    );
  },
);

void t.test('slicesFor: one slice per family and port set, labelled and owned', async (t) => {
  const subsets: EndpointSubset[] = [
    {
      addresses: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }],
      notReadyAddresses: [{ ip: '10.0.0.2' }],
      ports: ports(HTTP),
    },
    { addresses: [{ ip: '10.0.0.1' }], ports: ports(HTTP_GRPC) },
  ];
  const slices = slicesFor({ namespace: 'ns', service: 'vm-svc', uid: 'u-1' }, subsets);
  t.equal(slices.length, 3);
  const [v4, v6, v4b] = slices;
  t.equal(v4!.metadata!.name, sliceName('vm-svc', 'IPv4', '80'));
  t.match(v4!.metadata!.name, /^vm-svc-vm-ipv4-[0-9a-f]{8}$/);
  t.equal(v4!.addressType, 'IPv4');
  t.same(v4!.metadata!.labels, { [SERVICE_NAME_LABEL]: 'vm-svc', [MANAGED_BY_LABEL]: MANAGED_BY });
  t.same(v4!.metadata!.ownerReferences, [
    { apiVersion: 'v1', kind: 'Service', name: 'vm-svc', uid: 'u-1', controller: true },
  ]);
  t.same(v4!.endpoints, [
    { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false } },
    { addresses: ['10.0.0.2'], conditions: { ready: false, serving: false, terminating: false } },
  ]);
  t.same(v4!.ports, [{ name: 'http', port: 80, protocol: 'TCP' }]);
  t.equal(v6!.addressType, 'IPv6');
  t.same(
    v6!.endpoints.map((e) => e.addresses),
    [['fd00::1']],
  );
  t.same(
    v4b!.ports!.map((p) => p.port),
    [80, 9090],
  );
  t.not(v4b!.metadata!.name, v4!.metadata!.name);
  t.same(slicesFor({ namespace: 'ns', service: 's' }, []), [], 'no addresses, no slices');
  t.notOk(
    slicesFor({ namespace: 'ns', service: 's' }, subsets)[0]!.metadata!.ownerReferences,
    'no uid, no owner',
  );
});

void t.test(
  'planSlices: create, update with the live resourceVersion, delete ours only, unchanged',
  async (t) => {
    const owner = { namespace: 'ns', service: 's', uid: 'u' };
    const want = slicesFor(owner, [
      { addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }], ports: ports(HTTP) },
    ]);
    const old = slicesFor(owner, [{ addresses: [{ ip: '10.0.0.1' }], ports: ports(HTTP) }]).map(
      (s) => ({
        ...s,
        metadata: {
          ...s.metadata,
          resourceVersion: '41',
          labels: { ...s.metadata!.labels, extra: 'kept' },
        },
      }),
    );
    const stale = slicesFor(owner, [{ addresses: [{ ip: '10.0.0.1' }], ports: ports(HTTP_GRPC) }]);
    const p = planSlices(want, [...old, ...stale]);
    t.same(p.create, []);
    t.equal(p.update.length, 1);
    t.equal(p.update[0]!.metadata!.resourceVersion, '41', 'written against the version read');
    t.equal(p.update[0]!.metadata!.labels!.extra, 'kept', "someone else's label survives");
    t.same(
      p.update[0]!.endpoints.map((e) => e.addresses[0]),
      ['10.0.0.1', '10.0.0.2'],
    );
    t.same(p.remove, [stale[0]!.metadata!.name]);
    const same = planSlices(
      want,
      want.map((s) => ({ ...s, metadata: { ...s.metadata, resourceVersion: '7' } })),
    );
    t.same(same.unchanged, [want[0]!.metadata!.name]);
    t.same([same.create, same.update, same.remove], [[], [], []]);
    t.same(planSlices(want, []).create, want);
    t.same(planSlices([], old).remove, [old[0]!.metadata.name], 'nothing left: our slices go');
  },
);

void t.test('withServiceAccount: a comma list, each account once', async (t) => {
  t.equal(withServiceAccount(undefined, 'vm'), 'vm');
  t.equal(withServiceAccount('', 'vm'), 'vm');
  t.equal(withServiceAccount('a, b', 'vm'), 'a,b,vm');
  t.equal(withServiceAccount('a,vm', 'vm'), 'a,vm');
});
