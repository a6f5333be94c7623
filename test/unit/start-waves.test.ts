import t from 'tap';
import { startWaves, type StartOrder } from '../../src/start-waves';

const names = (waves: StartOrder[][]): string[][] => waves.map((w) => w.map((c) => c.name));

t.test('start waves: who starts together, in the registry order', async (t) => {
  const certs = { name: 'certs' };
  const capture = { name: 'capture', startsAfter: [] };
  const dns = { name: 'dns', startsAfter: [] };
  const sidecar = { name: 'sidecar', startsAfter: ['certs'] };
  const cases: [string, StartOrder[], string[][]][] = [
    ['nothing on', [], []],
    [
      'components that say nothing: one by one',
      [certs, { name: 'a' }, { name: 'b' }],
      [['certs'], ['a'], ['b']],
    ],
    [
      'the daemon: capture and DNS beside certs, the sidecar after them',
      [certs, capture, dns, sidecar],
      [['certs', 'capture', 'dns'], ['sidecar']],
    ],
    [
      'certificates off: the sidecar joins capture and DNS',
      [capture, dns, sidecar],
      [['capture', 'dns', 'sidecar']],
    ],
    ['DNS off', [certs, capture, sidecar], [['certs', 'capture'], ['sidecar']]],
    [
      'a component after a wave waits for all of it',
      [certs, capture, { name: 'x' }],
      [['certs', 'capture'], ['x']],
    ],
    [
      'after a component of an earlier wave: joins the current one',
      [certs, { name: 'a' }, { name: 'b', startsAfter: ['certs'] }],
      [['certs'], ['a', 'b']],
    ],
  ];
  for (const [what, input, want] of cases) t.same(names(startWaves(input)), want, what);
});
