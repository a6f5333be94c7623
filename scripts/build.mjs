// Bundles the agent into one CommonJS file runnable by Node 20 with no node_modules beside it.
// The CA messages are encoded by src/ca/wire.ts; no .proto file is needed at run time.
import { build } from 'esbuild';
import { readFileSync, mkdirSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/istio-node-agent.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifySyntax: true,
  legalComments: 'linked',
  sourcemap: false,
  banner: { js: '#!/usr/bin/env node' },
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
