import t from 'tap';
import { buildComponents } from '../../src/components';
import { FakeClock } from '../../src/lib/clock';
import { startPrerequisites, type StartOrder } from '../../src/start-order';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';

const named = (m: Map<StartOrder, StartOrder[]>): Record<string, string[]> =>
  Object.fromEntries([...m].map(([c, after]) => [c.name, after.map((a) => a.name)]));

t.test('start order: what each component waits for', async (t) => {
  const certs = { name: 'certs' };
  const capture = { name: 'capture', startsAfter: ['certs'] };
  const dns = { name: 'dns', startsAfter: [] };
  const sidecar = { name: 'sidecar' };
  const cases: [string, StartOrder[], Record<string, string[]>][] = [
    ['nothing on', [], {}],
    [
      'components that say nothing: each after every earlier one',
      [certs, { name: 'a' }, { name: 'b' }],
      { certs: [], a: ['certs'], b: ['certs', 'a'] },
    ],
    [
      'the daemon: DNS beside the certificates, capture after them only, the sidecar after all',
      [certs, capture, dns, sidecar],
      { certs: [], capture: ['certs'], dns: [], sidecar: ['certs', 'capture', 'dns'] },
    ],
    [
      'certificates off: capture needs nothing that is on',
      [capture, dns, sidecar],
      { capture: [], dns: [], sidecar: ['capture', 'dns'] },
    ],
    [
      'DNS off',
      [certs, capture, sidecar],
      { certs: [], capture: ['certs'], sidecar: ['certs', 'capture'] },
    ],
    [
      'a name that comes later in the registry is ignored: no cycle',
      [
        { name: 'a', startsAfter: ['b'] },
        { name: 'b', startsAfter: ['a'] },
      ],
      { a: [], b: ['a'] },
    ],
  ];
  for (const [what, input, want] of cases) t.same(named(startPrerequisites(input)), want, what);
});

t.test('the real components declare that order', async (t) => {
  // Every component on; building one does no I/O on the host.
  const components = await buildComponents(
    testConfig({
      ISTIO_SERVICE_CIDR: '10.96.0.0/12',
      ISTIO_PILOT_IP: '10.0.0.7',
      SIDECAR_MODE: 'envoy',
    }),
    testDeps({ clock: new FakeClock() }),
  );
  t.same(named(startPrerequisites(components)), {
    certs: [],
    capture: ['certs'],
    dns: [],
    sidecar: ['certs', 'capture', 'dns'],
  });
  await Promise.all(components.map((c) => c.stop()));
});
