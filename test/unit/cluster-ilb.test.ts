// The load balancers a VM reaches the cluster through (Istio 1.0's mesh-expansion.yaml): which
// Services to look in, and addresses given by hand instead, with the port a VM uses on each.
import t from 'tap';
import {
  DEFAULT_ISTIO_NAMESPACE,
  addressFlag,
  defaultIlbs,
  givenAddress,
  ilbServices,
  parseServiceRef,
} from '../../src/cluster/ilb';

void t.test("the Services: 1.0's names, each replaceable by NAME or NS/NAME", async (t) => {
  t.equal(DEFAULT_ISTIO_NAMESPACE, 'istio-system');
  t.same(ilbServices('istio-system', {}), defaultIlbs('istio-system'));
  t.same(ilbServices('mesh', { dns: 'my-dns', pilot: 'pilot-vm', mixer: 'ops/mixer-vm' }), {
    dns: { namespace: 'kube-system', name: 'my-dns' },
    pilot: { namespace: 'mesh', name: 'pilot-vm' },
    citadel: { namespace: 'mesh', name: 'citadel-ilb' },
    mixer: { namespace: 'ops', name: 'mixer-vm' },
  });
  t.equal(
    ilbServices('istio-system', { citadel: 'a/b/c' }),
    '--citadel-service "a/b/c" is not [NAMESPACE/]NAME',
  );
  t.equal(
    ilbServices('istio-system', { dns: 'DNS' }),
    '--dns-service "DNS" is not [NAMESPACE/]NAME',
  );
  t.same(parseServiceRef('ns/name', 'x'), { namespace: 'ns', name: 'name' });
  t.equal(parseServiceRef('ns/', 'x'), undefined);
});

void t.test('an address by hand: the flag, an IP strictly, the port a VM uses there', async (t) => {
  const cases: [Parameters<typeof givenAddress>, ReturnType<typeof givenAddress>][] = [
    [['pilot', '10.0.0.7'], { ip: '10.0.0.7', port: 15011, flag: '--pilot-ip' }],
    [['citadel', 'fd00::8'], { ip: 'fd00::8', port: 8060, flag: '--citadel-ip' }],
    [['mixer', '10.0.0.9'], { ip: '10.0.0.9', port: 15004, flag: '--mixer-ip' }],
    [['pilot', '10.0.0.7:15011'], '--pilot-ip "10.0.0.7:15011" is not an IP address'],
    [['citadel', '10.0.0.08'], '--citadel-ip "10.0.0.08" is not an IP address'],
    [['dns', '10.0.0.10'], { ip: '10.0.0.10', port: 53, flag: '--dns-server' }],
    [['dns', '10.0.0.10:5353'], { ip: '10.0.0.10', port: 5353, flag: '--dns-server' }],
    [['dns', 'fd00::10'], { ip: 'fd00::10', port: 53, flag: '--dns-server' }],
    [['dns', '[fd00::10]:5353'], { ip: 'fd00::10', port: 5353, flag: '--dns-server' }],
    [['dns', '[fd00::10]'], { ip: 'fd00::10', port: 53, flag: '--dns-server' }],
    [['dns', '10.0.0.10:0'], '--dns-server "10.0.0.10:0": bad port'],
    [['dns', '10.0.0.10:65536'], '--dns-server "10.0.0.10:65536": bad port'],
    [['dns', 'kube-dns:53'], '--dns-server "kube-dns" is not an IP address'],
    [['dns', 'kube-dns:0'], '--dns-server "kube-dns" is not an IP address'],
    [['dns', '10.0.0.10:dns'], '--dns-server "10.0.0.10:dns" is not an IP address'],
    [['dns', '[10.0.0.10]:53'], '--dns-server "[10.0.0.10]:53" is not an IP address'],
    [['dns', '010.0.0.10'], '--dns-server "010.0.0.10" is not an IP address'],
  ];
  for (const [args, want] of cases) t.same(givenAddress(...args), want, args.join(' '));
  t.same((['dns', 'pilot', 'citadel', 'mixer'] as const).map(addressFlag), [
    '--dns-server',
    '--pilot-ip',
    '--citadel-ip',
    '--mixer-ip',
  ]);
});
