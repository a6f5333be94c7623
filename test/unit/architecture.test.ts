// The shape of src/ (issue 10, "Done means"): no import cycle, no file over SIZE_LIMIT lines
// without a reason at its top, no folder entered except through its index.ts. The checks live in
// scripts/architecture.ts (`npx tsx scripts/architecture.ts` prints the same findings).
import t from 'tap';
import * as path from 'node:path';
import {
  SIZE_LIMIT,
  boundaryViolations,
  findCycles,
  importGraph,
  oversizedFiles,
  readSources,
  type SourceFile,
} from '../../scripts/architecture';

const files = readSources(path.resolve(__dirname, '../../src'));
const graph = importGraph(files);

t.test('the checks see the whole of src/', async (t) => {
  t.ok(files.length > 80, `${files.length} files`);
  t.ok(graph.get('main.ts')?.length, 'main.ts imports something');
  const certs = graph.get('components.ts') ?? [];
  t.ok(certs.includes('certs/index.ts'), 'dynamic import() is an import');
});

t.test('no import cycle among the modules of src/', async (t) => {
  const cycles = findCycles(graph);
  t.same(
    cycles.map((c) => c.join(' → ')),
    [],
    'each entry is one cycle, first file repeated at the end',
  );
});

t.test(
  `no file in src/ over ${SIZE_LIMIT} lines without "// size: <reason>" at its top`,
  async (t) => {
    const found = oversizedFiles(files).map((f) => `${f.path} (${f.lines} lines)`);
    t.same(found, []);
  },
);

t.test(
  'a folder is entered only through its index.ts (lib/, host/, config/types.ts shared)',
  async (t) => {
    const found = boundaryViolations(graph).map((r) => `${r.from} -> ${r.to}`);
    t.same(found, []);
  },
);

// The checks themselves, on small made-up trees.
const tree = (entries: Record<string, string>): SourceFile[] =>
  Object.entries(entries).map(([p, text]) => ({ path: p, text }));

t.test('findCycles names the files of each cycle, type-only imports included', async (t) => {
  const g = importGraph(
    tree({
      'components.ts': "export const all = [() => import('./certs/index')];",
      'certs/index.ts': "import type { F } from '../components';\nimport { m } from './manager';",
      'certs/manager.ts': "export { x } from '../lib/x';",
      'lib/x.ts': 'export const x = 1;',
      'a/index.ts': "import { b } from './b';",
      'a/b.ts': "import { c } from './c';",
      'a/c.ts': "import { a } from './index';",
      'self.ts': "import { me } from './self';",
    }),
  );
  t.same(findCycles(g), [
    ['a/b.ts', 'a/c.ts', 'a/index.ts', 'a/b.ts'],
    ['certs/index.ts', 'components.ts', 'certs/index.ts'],
    ['self.ts', 'self.ts'],
  ]);
  t.same(findCycles(importGraph(tree({ 'x.ts': "import './y';", 'y.ts': '' }))), []);
});

t.test('oversizedFiles: over the limit without the marker in the first lines', async (t) => {
  const long = (head: string): string => head + 'x\n'.repeat(SIZE_LIMIT + 1);
  const found = oversizedFiles(
    tree({
      'ok.ts': 'x\n'.repeat(SIZE_LIMIT),
      'long.ts': long(''),
      'reason.ts': long('// size: one state machine; its parts share every field\n'),
      'late.ts': long('a\nb\nc\nd\ne\n// size: too late\n'),
      'empty.ts': long('// size:\n'),
    }),
  );
  t.same(
    found.map((f) => f.path),
    ['long.ts', 'late.ts', 'empty.ts'],
  );
  t.equal(found[0]!.lines, SIZE_LIMIT + 1);
});

t.test(
  'boundaryViolations: only index.ts and the shared modules are reached from outside',
  async (t) => {
    const g = importGraph(
      tree({
        'agent.ts': "import { a } from './observe/logger';\nimport { b } from './observe/index';",
        'certs/index.ts': "import { u } from '../netfilter/users';\nimport { s } from './store';",
        'certs/store.ts':
          "import { w } from '../lib/atomic-write';\nimport { h } from '../host/users';\nimport type { C } from '../config/types';\nimport { c } from '../component';",
        'cli/check.ts': "import { r } from '../config/raw';\nimport { i } from '../config';",
        'config/index.ts': '',
        'config/raw.ts': '',
        'config/types.ts': '',
        'component.ts': '',
        'host/users.ts': '',
        'lib/atomic-write.ts': '',
        'netfilter/users.ts': '',
        'observe/index.ts': '',
        'observe/logger.ts': '',
      }),
    );
    t.same(boundaryViolations(g), [
      { from: 'agent.ts', to: 'observe/logger.ts' },
      { from: 'certs/index.ts', to: 'netfilter/users.ts' },
      { from: 'cli/check.ts', to: 'config/raw.ts' },
    ]);
  },
);
