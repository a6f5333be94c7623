/**
 * Warnings about variable names, pure: a name the code does not read (a typo, a lower-case
 * name) with the nearest name it does read, and a name set twice in one file. The known names
 * are those RawEnv recorded while the configuration was built.
 */
import type { EnvEntry } from './env-file';

/** Names that are never configuration and never warned about. */
const NOT_CONFIG = new Set(['ISTIO_CLUSTER_CONFIG', 'ISTIO_SIDECAR_CONFIG']);
/** Node metadata for the sidecar: any name after the prefix is fine. */
const META_PREFIX = 'ISTIO_META_';

/**
 * Edit distance with adjacent transpositions (optimal string alignment): ADRESS → ADDRESS is 1,
 * CIDADEL → CITADEL is 1, ENVYO → ENVOY is 1. Three rows of the table, not all of it: this runs
 * for every long name in the environment at each start. Past `max`, any number above it.
 */
export function editDistance(a: string, b: string, max = Infinity): number {
  let before = new Array<number>(b.length + 1).fill(0); // row i - 2
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j); // row i - 1
  let row = new Array<number>(b.length + 1).fill(0);
  let prevMin = 0;
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, before[j - 2]! + 1);
      row[j] = v;
      rowMin = Math.min(rowMin, v);
    }
    // Every later cell is at least the smallest of the two rows above it (or one more).
    if (rowMin > max && prevMin > max) return max + 1;
    prevMin = rowMin;
    [before, prev, row] = [prev, row, before];
  }
  return prev[b.length]!;
}

/**
 * The known name `name` most likely meant: the same name in another case, else the nearest by
 * edit distance when it is close (at most 2 edits, or a fifth of the name for long names); ties
 * go to the alphabetically first; with `maxEdits`, only names at most that many edits away.
 * Undefined when none is close. A name whose length differs by more than that many is never
 * close (each edit changes the length by at most one), so its distance is not computed.
 */
export function nearestName(
  name: string,
  known: Iterable<string>,
  maxEdits = Infinity,
): string | undefined {
  const upper = name.toUpperCase();
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    if (k === name) return undefined;
    const K = k.toUpperCase();
    if (K === upper) return k;
    const limit = Math.min(maxEdits, Math.max(2, Math.floor(k.length / 5)));
    if (Math.abs(K.length - upper.length) > limit) continue;
    const d = editDistance(upper, K, limit);
    if (d <= limit && (!best || d < best.d || (d === best.d && k < best.name)))
      best = { name: k, d };
  }
  return best?.name;
}

/** The assignments of one configuration file, as scanned. */
export interface FileNames {
  readonly file: string;
  readonly entries: readonly EnvEntry[];
}

/**
 * The warnings about names, in file and line order: in the files, every name the code does not
 * read (with the nearest known name) and every name set twice in the same file; in the process
 * environment, which holds much else, only unknown `ISTIO_*` names and names within an edit or
 * two of a known one (a typo in a unit's `Environment=`).
 */
export function nameWarnings(
  files: readonly FileNames[],
  env: Readonly<Record<string, string | undefined>>,
  known: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  const isKnown = (k: string): boolean =>
    known.has(k) ||
    NOT_CONFIG.has(k) ||
    (k.startsWith(META_PREFIX) && k.length > META_PREFIX.length);
  for (const f of files) {
    const first = new Map<string, number>();
    for (const e of f.entries) {
      const where = `${f.file}:${e.line}`;
      const before = first.get(e.key);
      if (before !== undefined) {
        out.push(
          `${where}: ${e.key} is set again (first on line ${before}); this later value wins`,
        );
      } else {
        first.set(e.key, e.line);
      }
      if (before === undefined && !isKnown(e.key)) out.push(unknown(where, e.key, known));
    }
  }
  for (const k of Object.keys(env).sort()) {
    if (env[k] === undefined || isKnown(k)) continue;
    if (k.startsWith('ISTIO_')) {
      out.push(unknown('environment', k, known));
    } else if (/^[A-Z][A-Z0-9_]{7,}$/.test(k)) {
      const near = nearestName(k, known, 2);
      if (near !== undefined)
        out.push(`environment: unknown variable ${k} is ignored; did you mean ${near}?`);
    }
  }
  return out;
}

function unknown(where: string, key: string, known: ReadonlySet<string>): string {
  const near = nearestName(key, known);
  const hint =
    near === undefined
      ? ''
      : near === key.toUpperCase()
        ? `; names are upper-case: write ${near}`
        : `; did you mean ${near}?`;
  return `${where}: unknown variable ${key} is ignored${hint}`;
}
