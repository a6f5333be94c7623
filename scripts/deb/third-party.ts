// Lists the npm packages that end up inside the bundle (esbuild's metafile says which files it
// read) and writes their license texts into one file for /usr/share/doc/istio-node-agent/.
// Usage: node --import tsx scripts/deb/third-party.ts <out-file>
import { build } from 'esbuild';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

interface Pkg {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly dir: string;
  readonly files: string[];
}

const root = path.resolve(__dirname, '../..');

/** The package directories (node_modules/x or node_modules/@s/x, deepest) of the bundle's inputs. */
export async function bundledPackageDirs(): Promise<string[]> {
  const r = await build({
    absWorkingDir: root,
    entryPoints: ['src/main.ts'],
    outfile: 'third-party-probe.cjs',
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    loader: { '.proto': 'text' },
    define: { __AGENT_VERSION__: '"0"' },
    metafile: true,
    write: false,
    logLevel: 'error',
    // As scripts/build.mjs: the `cluster` commands' Kubernetes client is a file of its own,
    // not in the executable the package ships.
    plugins: [
      {
        name: 'kube-client-apart',
        setup(b) {
          b.onResolve({ filter: /^\.\/kube-client$/ }, () => ({
            path: 'kube-client',
            external: true,
          }));
        },
      },
    ],
  });
  const dirs = new Set<string>();
  for (const input of Object.keys(r.metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]!);
  }
  return [...dirs].sort();
}

function readPkg(dir: string): Pkg {
  const abs = path.join(root, dir);
  const meta = JSON.parse(readFileSync(path.join(abs, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    license?: string | { type: string };
  };
  const license =
    typeof meta.license === 'string' ? meta.license : (meta.license?.type ?? 'UNKNOWN');
  const files = readdirSync(abs)
    .filter((f) => /^(licen[cs]e|copying|notice)/i.test(f))
    .sort();
  return { name: meta.name, version: meta.version, license, dir: abs, files };
}

export async function thirdPartyPackages(): Promise<Pkg[]> {
  const pkgs = (await bundledPackageDirs()).map(readPkg);
  // esbuild writes a few helpers of its own (__commonJS, __toESM) into every bundle.
  const esbuildDir = path.join('node_modules', 'esbuild');
  if (existsSync(path.join(root, esbuildDir))) pkgs.push({ ...readPkg(esbuildDir) });
  return pkgs;
}

export function renderLicenses(pkgs: readonly Pkg[]): string {
  const out: string[] = [
    'Third-party software inside /usr/bin/istio-node-agent',
    '',
    'The agent is one JavaScript bundle built by esbuild from these npm packages (and helper',
    'code from esbuild itself). Their licenses follow, each as its package ships it.',
    '',
    ...pkgs.map((p) => `  ${p.name} ${p.version} (${p.license})`),
    '',
  ];
  for (const p of pkgs) {
    out.push('='.repeat(78), `${p.name} ${p.version}`, `License: ${p.license}`, '='.repeat(78), '');
    if (p.files.length === 0)
      out.push(`(The package ships no license file; package.json declares ${p.license}.)`, '');
    for (const f of p.files) out.push(readFileSync(path.join(p.dir, f), 'utf8').trimEnd(), '');
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const outFile = process.argv[2];
  if (!outFile) throw new Error('usage: third-party.ts <out-file>');
  const pkgs = await thirdPartyPackages();
  const unknown = pkgs.filter((p) => p.license === 'UNKNOWN' || p.files.length === 0);
  for (const p of unknown)
    process.stderr.write(`warning: ${p.name} ${p.version}: no license file or field\n`);
  writeFileSync(outFile, renderLicenses(pkgs));
  process.stdout.write(pkgs.map((p) => `${p.name}@${p.version} ${p.license}`).join('\n') + '\n');
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exitCode = 1;
  });
}
