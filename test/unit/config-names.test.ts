import t from 'tap';
import { buildConfig, editDistance, nearestName } from '../../src/config/index';
import { testConfig, testRaw } from '../helpers/config';

t.test('editDistance: insertions, deletions, substitutions, adjacent transpositions', async (t) => {
  const cases: [string, string, number][] = [
    ['', '', 0],
    ['', 'ABC', 3],
    ['ABC', '', 3],
    ['CITADEL', 'CITADEL', 0],
    ['ADRESS', 'ADDRESS', 1],
    ['CIDADEL', 'CITADEL', 1],
    ['ENVYO', 'ENVOY', 1],
    ['CA', 'AC', 1],
    ['CA', 'ABC', 3], // optimal string alignment: no edit of a transposed pair
    ['KITTEN', 'SITTING', 3],
    ['ISTIO_CAPTURE', 'ISTIO_CAPTRUE', 1],
  ];
  for (const [a, b, d] of cases) {
    t.equal(editDistance(a, b), d, `${a} → ${b}`);
    t.equal(editDistance(b, a), d, `${b} → ${a}`);
    for (let max = 0; max <= 4; max++)
      t.equal(
        Math.min(editDistance(a, b, max), max + 1),
        Math.min(d, max + 1),
        `${a} → ${b} within ${max}`,
      );
  }
});

/** nearestName as specified, with every distance computed (no length shortcut). */
function reference(name: string, known: Iterable<string>): string | undefined {
  const upper = name.toUpperCase();
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    if (k === name) return undefined;
    if (k.toUpperCase() === upper) return k;
    const d = editDistance(upper, k.toUpperCase()); // no bound: the whole table
    if (
      d <= Math.max(2, Math.floor(k.length / 5)) &&
      (!best || d < best.d || (d === best.d && k < best.name))
    )
      best = { name: k, d };
  }
  return best?.name;
}

t.test('nearestName: skipping names of another length changes no answer', async (t) => {
  // Every name the configuration reads.
  const raw = testRaw();
  buildConfig(raw, testConfig().files);
  const known = [...raw.read];
  t.ok(known.length > 40, `${known.length} known names`);
  // Each known name with one to four characters dropped, doubled, swapped or changed.
  const probes = new Set<string>(['PATH', 'HOME', 'INVOCATION_ID', 'JOURNAL_STREAM', 'X']);
  for (const k of known) {
    for (let n = 1; n <= 4; n++) {
      probes.add(k.slice(n));
      probes.add(k.slice(0, -n));
      probes.add(k + k.slice(0, n));
      probes.add(k.slice(0, 2) + 'Q'.repeat(n) + k.slice(2 + n));
    }
    probes.add(k.slice(1, 2) + k.slice(0, 1) + k.slice(2));
    probes.add(k.toLowerCase());
  }
  const differ = [...probes].filter((p) => nearestName(p, known) !== reference(p, known));
  t.same(differ, [], `${probes.size} probes`);
  // Within two edits (names in the process environment): the nearest name, when it is that close.
  const within2 = (p: string): string | undefined => {
    const near = reference(p, known);
    return near !== undefined && editDistance(p.toUpperCase(), near.toUpperCase()) <= 2
      ? near
      : undefined;
  };
  t.same(
    [...probes].filter((p) => nearestName(p, known, 2) !== within2(p)),
    [],
    'with maxEdits 2',
  );
  t.ok(
    [...probes].filter((p) => nearestName(p, known) !== undefined).length > 100,
    'most probes have a nearest name (the comparison is not vacuous)',
  );
});
