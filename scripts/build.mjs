// Bundles the agent into one CommonJS file runnable by Node 20 with no node_modules beside it.
// The CA messages are encoded by src/ca/wire.ts; no .proto file is needed at run time.
//
// The Kubernetes client of the `cluster` commands (src/cluster/kube-client.ts with
// @kubernetes/client-node, ~5 MB) goes into a second file beside it, istio-node-agent-kube.cjs,
// loaded by `import()` only when a `cluster` command calls the API: inside the main file it made
// every start of the daemon parse it (measured in docs/decisions.md). The daemon, the .deb and
// every other command need only the main file.
//
// Usage: node scripts/build.mjs [OUTDIR]   (default dist)
import { build } from 'esbuild';
import { readFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const outdir = process.argv[2] ?? 'dist';
export const KUBE_BUNDLE = 'istio-node-agent-kube.cjs';
mkdirSync(outdir, { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifySyntax: true,
  sourcemap: false,
  logLevel: 'warning',
};

/** In the main file, `import('./kube-client')` becomes an import of the second file. */
const kubeClientApart = {
  name: 'kube-client-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/kube-client$/ }, () => ({
      path: `./${KUBE_BUNDLE}`,
      external: true,
    }));
  },
};

await build({
  ...common,
  entryPoints: ['src/main.ts'],
  outfile: path.join(outdir, 'istio-node-agent.cjs'),
  legalComments: 'linked',
  banner: { js: '#!/usr/bin/env node' },
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  plugins: [kubeClientApart],
});
await build({
  ...common,
  entryPoints: ['src/cluster/kube-client.ts'],
  outfile: path.join(outdir, KUBE_BUNDLE),
  // Inline, so the main file's .LEGAL.txt stays the only one (scripts/build-deb.sh ships it).
  legalComments: 'eof',
});
