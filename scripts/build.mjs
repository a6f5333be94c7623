// Bundles the agent into one CommonJS file runnable by Node 20 with no node_modules beside it.
// The CA messages are encoded by src/ca/wire.ts; no .proto file is needed at run time.
//
//   node scripts/build.mjs                      dist/istio-node-agent.cjs (what npm run build does)
//   node scripts/build.mjs --entry E --outfile O [--sourcemap] [--metafile F]
//                                               the same options for another entry or output
//                                               (benchmarks: a source-mapped bundle to profile, a
//                                               start-up snapshot entry)
import { build } from 'esbuild';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    entry: { type: 'string', default: 'src/main.ts' },
    outfile: { type: 'string', default: 'dist/istio-node-agent.cjs' },
    sourcemap: { type: 'boolean', default: false },
    metafile: { type: 'string' },
  },
});
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
mkdirSync(path.dirname(values.outfile), { recursive: true });
const result = await build({
  entryPoints: [values.entry],
  outfile: values.outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifySyntax: true,
  legalComments: 'linked',
  sourcemap: values.sourcemap,
  metafile: values.metafile !== undefined,
  banner: { js: '#!/usr/bin/env node' },
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
if (values.metafile !== undefined) writeFileSync(values.metafile, JSON.stringify(result.metafile));
