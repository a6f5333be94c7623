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
 * CIDADEL → CITADEL is 1, ENVYO → ENVOY is 1.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known name `name` most likely meant: the same name in another case, else the nearest by
 * edit distance when it is close (at most 2 edits, or a fifth of the name for long names); ties
 * go to the alphabetically first. Undefined when none is close.
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  const upper = name.toUpperCase();
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    if (k === name) return undefined;
    const K = k.toUpperCase();
    if (K === upper) return k;
    const d = editDistance(upper, K);
    const close = d <= Math.max(2, Math.floor(k.length / 5));
    if (close && (!best || d < best.d || (d === best.d && k < best.name))) best = { name: k, d };
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
      const near = nearestName(k, known);
      if (near !== undefined && editDistance(k, near.toUpperCase()) <= 2)
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
