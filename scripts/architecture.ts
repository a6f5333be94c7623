// The house rules on the shape of src/, as checks anyone can run: no import cycle, no source file
// over SIZE_LIMIT lines without a reason at its top, no folder reached into except through its
// index.ts. test/unit/architecture.test.ts runs them; `npx tsx scripts/architecture.ts` prints
// what it finds and exits 1 when something is wrong.
//
// Imports are read with TypeScript's own scanner (ts.preProcessFile), not from a bundle's
// metafile: esbuild drops `import type`, and a cycle through types is still a cycle (the one
// between components.ts and the component folders was type-only).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

/** A file under src/ over this many lines must say why at its top. */
export const SIZE_LIMIT = 400;

/**
 * The reason marker: a line `// size: <why this file is long>` within the first
 * SIZE_MARKER_LINES lines of the file.
 */
export const SIZE_MARKER = /^\/\/ size: \S/;
export const SIZE_MARKER_LINES = 5;

export interface SourceFile {
  /** Path relative to src/, with forward slashes, e.g. `certs/manager.ts`. */
  readonly path: string;
  readonly text: string;
}

/** Module → the modules it imports (relative imports resolved to src/ paths). */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

export function readSources(srcDir: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts'))
        out.push({
          path: path.relative(srcDir, p).split(path.sep).join('/'),
          text: readFileSync(p, 'utf8'),
        });
    }
  };
  walk(srcDir);
  return out;
}

/**
 * Every import of each file: static, type-only, re-exports and dynamic `import()`, resolved
 * the way the bundler resolves them (`./x` → `x.ts` or `x/index.ts`). Imports of packages and
 * of non-TypeScript files (protos, JSON) are left out.
 */
export function importGraph(files: readonly SourceFile[]): ImportGraph {
  const known = new Set(files.map((f) => f.path));
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps: string[] = [];
    for (const ref of ts.preProcessFile(f.text, true, true).importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const base = path.posix.normalize(path.posix.join(path.posix.dirname(f.path), ref.fileName));
      const target = [`${base}.ts`, `${base}/index.ts`, base].find((c) => known.has(c));
      if (target !== undefined && !deps.includes(target)) deps.push(target);
    }
    graph.set(f.path, deps);
  }
  return graph;
}

/**
 * The import cycles, one per strongly connected group of modules, each as the files of one
 * cycle through it in import order with the first file repeated at the end
 * (`a.ts → b.ts → a.ts`).
 */
export function findCycles(graph: ImportGraph): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1 || (graph.get(v) ?? []).includes(v)) groups.push(group);
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return groups.map((g) => cycleThrough(graph, new Set(g)));
}

/** One cycle inside a strongly connected group, from its first file (sorted) back to it. */
function cycleThrough(graph: ImportGraph, group: ReadonlySet<string>): string[] {
  const start = [...group].sort()[0]!;
  // Breadth-first from start's imports back to start: the shortest cycle through it.
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!group.has(w)) continue;
      if (w === start) {
        const back: string[] = [];
        for (let u = v; u !== start; u = prev.get(u)!) back.push(u);
        return [start, ...back.reverse(), start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

export interface Oversized {
  readonly path: string;
  readonly lines: number;
}

/** Files over SIZE_LIMIT lines whose first lines carry no `// size: …` reason. */
export function oversizedFiles(files: readonly SourceFile[]): Oversized[] {
  const out: Oversized[] = [];
  for (const f of files) {
    const lines = f.text.split('\n');
    const count = f.text.endsWith('\n') ? lines.length - 1 : lines.length;
    if (count <= SIZE_LIMIT) continue;
    if (lines.slice(0, SIZE_MARKER_LINES).some((l) => SIZE_MARKER.test(l))) continue;
    out.push({ path: f.path, lines: count });
  }
  return out;
}

/**
 * What any module may import from anywhere: the small shared pieces (lib/, host/), the
 * configuration's types, and the files at the top of src/ (the component contract in
 * component.ts, the registry, the orchestrator).
 */
export function isShared(target: string): boolean {
  return (
    !target.includes('/') ||
    target.startsWith('lib/') ||
    target.startsWith('host/') ||
    target === 'config/types.ts'
  );
}

export interface Reach {
  readonly from: string;
  readonly to: string;
}

/**
 * Imports that reach into another folder past its index.ts (`certs/index.ts` importing
 * `netfilter/users.ts`): a folder is entered only through its index.ts, except for shared
 * modules (isShared).
 */
export function boundaryViolations(graph: ImportGraph): Reach[] {
  const out: Reach[] = [];
  for (const [from, deps] of graph) {
    const fromFolder = from.includes('/') ? from.slice(0, from.indexOf('/')) : undefined;
    for (const to of deps) {
      if (isShared(to)) continue;
      const toFolder = to.slice(0, to.indexOf('/'));
      if (toFolder === fromFolder) continue;
      if (to === `${toFolder}/index.ts`) continue;
      out.push({ from, to });
    }
  }
  return out;
}

function main(): void {
  const files = readSources(path.resolve(__dirname, '../src'));
  const graph = importGraph(files);
  const problems = [
    ...findCycles(graph).map((c) => `import cycle: ${c.join(' → ')}`),
    ...oversizedFiles(files).map(
      (f) =>
        `${f.path}: ${f.lines} lines, over ${SIZE_LIMIT} without a "// size: <reason>" line at its top`,
    ),
    ...boundaryViolations(graph).map(
      (r) => `${r.from} imports ${r.to}: go through ${r.to.slice(0, r.to.indexOf('/'))}/index.ts`,
    ),
  ];
  for (const p of problems) console.log(p);
  console.log(`${files.length} files, ${problems.length} problems`);
  if (problems.length > 0) process.exitCode = 1;
}

if (require.main === module) main();
