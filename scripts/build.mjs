// Bundles the agent into one CommonJS file runnable by Node 20 with no node_modules beside it.
// The CA messages are encoded by src/ca/wire.ts; no .proto file is needed at run time.
//
// @peculiar/x509 and its ASN.1 stack (~650 KiB of the 2.1 MB), which only the dev CA uses
// (src/lib/x509.ts, loaded by src/ca/signer.ts), are bundled on their own and carried inside the
// main file as one string, compiled by node:vm the first time the dev CA loads: V8 scans a string
// literal far faster than it pre-parses the code, and every start of the daemon paid for it
// (measured in docs/decisions.md). Modules the agent never runs (@grpc/proto-loader with
// protobufjs) are replaced by stubs (STUBS below). The executable stays one
// file (the SEA, the .deb's `dev-ca`).
//
// The Kubernetes client of the `cluster` commands (src/cluster/kube-client.ts with
// @kubernetes/client-node, ~5 MB) goes into a second file beside it, istio-node-agent-kube.cjs,
// loaded by `import()` only when a `cluster` command calls the API: inside the main file it made
// every start of the daemon parse it (measured in docs/decisions.md). The daemon, the .deb and
// every other command need only the main file.
//
//   node scripts/build.mjs [OUTDIR]                OUTDIR/istio-node-agent.cjs and
//                                                  OUTDIR/istio-node-agent-kube.cjs (default dist;
//                                                  what npm run build does)
//   node scripts/build.mjs --entry E --outfile O [--sourcemap] [--metafile F]
//                                                  the same options for another entry or output
//                                                  (benchmarks: a source-mapped bundle to profile,
//                                                  a start-up snapshot entry); the kube file goes
//                                                  beside O
import { build } from 'esbuild';
import { appendFileSync, readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    entry: { type: 'string', default: 'src/main.ts' },
    outfile: { type: 'string' },
    sourcemap: { type: 'boolean', default: false },
    metafile: { type: 'string' },
  },
});
const outfile = values.outfile ?? path.join(positionals[0] ?? 'dist', 'istio-node-agent.cjs');
const outdir = path.dirname(outfile);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
export const KUBE_BUNDLE = 'istio-node-agent-kube.cjs';
mkdirSync(outdir, { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifySyntax: true,
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

/** The legal comments of the x509 text, added to the main file's after its build. */
let x509Legal = '';

/** src/lib/x509.ts becomes a module that compiles the library's own bundle, kept as text. */
const x509AsText = {
  name: 'x509-as-text',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]lib[\\/]x509\.ts$/ }, async (args) => {
      const r = await build({
        ...common,
        entryPoints: [args.path],
        outfile: 'x509.cjs',
        write: false,
        legalComments: 'external',
      });
      const text = (ext) => r.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? '';
      x509Legal = text('.LEGAL.txt');
      return {
        loader: 'js',
        contents: `import { compileFunction } from 'node:vm';
const text = ${JSON.stringify(text('x509.cjs'))};
const module = { exports: {} };
compileFunction(text, ['exports', 'require', 'module'], {
  filename: 'istio-node-agent/@peculiar/x509.cjs',
})(module.exports, require, module);
export const x509 = module.exports.x509;
`,
      };
    });
  },
};

/**
 * Modules the agent never runs, replaced by stubs that say so if something does: grpc-js
 * requires @grpc/proto-loader (and protobufjs, ~260 KiB) only for channelz and ORCA, which read
 * .proto files from disk the bundle does not have.
 */
const STUBS = {
  '@grpc/proto-loader': `exports.loadSync = () => {
  throw new Error('@grpc/proto-loader is not in the istio-node-agent bundle (channelz, ORCA)');
};`,
};
const stubs = {
  name: 'stubs',
  setup(b) {
    const names = Object.keys(STUBS).map((n) => n.replace(/[/.-]/g, '\\$&'));
    b.onResolve({ filter: new RegExp(`^(${names.join('|')})$`) }, (a) => ({
      path: a.path,
      namespace: 'stub',
    }));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (a) => ({
      loader: 'js',
      contents: STUBS[a.path],
    }));
  },
};

// esbuild writes no legal file when the main file has no legal comments: none may be left over.
rmSync(`${outfile}.LEGAL.txt`, { force: true });
const result = await build({
  ...common,
  entryPoints: [values.entry],
  outfile,
  legalComments: 'linked',
  sourcemap: values.sourcemap,
  metafile: values.metafile !== undefined,
  banner: { js: '#!/usr/bin/env node' },
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  plugins: [kubeClientApart, x509AsText, stubs],
});
if (x509Legal !== '') appendFileSync(`${outfile}.LEGAL.txt`, x509Legal);
// esbuild writes ASCII code (its default charset escapes strings, templates and regular
// expressions) but keeps some comments as written; a single non-ASCII character anywhere makes
// V8 hold the whole 2 MB source as UTF-16 (+2 MiB resident, measured). What is left outside
// ASCII can only be in comments: spell it as \u{…} text there.
const text = readFileSync(outfile, 'utf8');
writeFileSync(
  outfile,
  text.replace(/[^\t\n\r\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`),
);
await build({
  ...common,
  entryPoints: ['src/cluster/kube-client.ts'],
  outfile: path.join(outdir, KUBE_BUNDLE),
  // Inline, so the main file's .LEGAL.txt stays the only one (scripts/build-deb.sh ships it).
  legalComments: 'eof',
});
if (values.metafile !== undefined) writeFileSync(values.metafile, JSON.stringify(result.metafile));
