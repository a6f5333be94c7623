// Benchmark: what the `cluster` commands' Kubernetes client would cost the daemon if it were in
// the daemon's bundle. Builds the agent both ways side by side, in one run on one machine:
//   split:  scripts/build.mjs (the client in istio-node-agent-kube.cjs, loaded only by `cluster`)
//   single: the same entry bundled with the client inside the one file
// and measures, alternating: `version` exec to exit, exec to the first certificate set written
// against a CA on loopback (the cert-start bench's path), and the idle daemon's resident memory.
//
//   npx tsx bench/cluster-split.ts [runs=7]
//
// Prints medians and ratios; asserts nothing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { build } from 'esbuild';
import { startDevCa, type DevCa } from '../src/ca/index';
import { certsOnlyEnv } from '../test/helpers/certs';

const ROOT = path.resolve(__dirname, '..');
const ID = 'spiffe://cluster.local/ns/default/sa/bench';
const runs = Number(process.argv[2] ?? 7);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function bundles(dir: string): Promise<Record<'split' | 'single', string>> {
  const split = path.join(dir, 'split');
  const r = spawnSync(process.execPath, ['scripts/build.mjs', split], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`build: ${r.stderr}`);
  const single = path.join(dir, 'single', 'istio-node-agent.cjs');
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['src/main.ts'],
    outfile: single,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minifySyntax: true,
    define: { __AGENT_VERSION__: '"bench"' },
    logLevel: 'warning',
  });
  return { split: path.join(split, 'istio-node-agent.cjs'), single };
}

async function firstSet(ca: DevCa, bundle: string): Promise<{ ms: number; rssKb: number }> {
  const base = mkdtempSync(path.join(tmpdir(), 'bench-split-'));
  const dir = path.join(base, 'certs');
  mkdirSync(dir);
  const b = await ca.issueBootstrap(ID, 3600_000, 'ECDSA');
  writeFileSync(path.join(dir, 'cert-chain.pem'), b.certChainPem);
  writeFileSync(path.join(dir, 'key.pem'), b.keyPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'root-cert.pem'), b.rootPem);
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, [bundle, 'run'], {
    env: certsOnlyEnv(ca.address, dir, path.join(base, 'state'), 'ECDSA'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ms = await new Promise<number>((resolve) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.includes('CSR is approved')) resolve(performance.now() - t0);
    });
  });
  await new Promise((r) => setTimeout(r, 2000)); // idle
  const rssKb = Number(
    /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid!}/status`, 'utf8'))![1],
  );
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  rmSync(base, { recursive: true, force: true });
  return { ms, rssKb };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-split-build-'));
  try {
    const b = await bundles(dir);
    const kinds = ['split', 'single'] as const;
    const version: Record<string, number[]> = { split: [], single: [] };
    const first: Record<string, number[]> = { split: [], single: [] };
    const rss: Record<string, number[]> = { split: [], single: [] };
    for (let i = 0; i < 3 * runs; i++) {
      for (const k of i % 2 ? [...kinds].reverse() : kinds) {
        const t0 = performance.now();
        spawnSync(process.execPath, [b[k], 'version']);
        version[k]!.push(performance.now() - t0);
      }
    }
    const ca = await startDevCa({ ttlMs: 3600_000 });
    await firstSet(ca, b.split); // warm the page cache
    for (let i = 0; i < runs; i++) {
      for (const k of i % 2 ? [...kinds].reverse() : kinds) {
        const r = await firstSet(ca, b[k]);
        first[k]!.push(r.ms);
        rss[k]!.push(r.rssKb);
      }
    }
    await ca.stop();
    const size = (f: string): string => `${(statSync(f).size / 1e6).toFixed(2)} MB`;
    console.log(
      `daemon bundle: split ${size(b.split)} (+ ${size(path.join(path.dirname(b.split), 'istio-node-agent-kube.cjs'))} for cluster), single ${size(b.single)}`,
    );
    console.log('median over runs          split    single   single/split');
    const row = (
      what: string,
      x: Record<string, number[]>,
      unit: string,
      f = (n: number) => n,
    ): void => {
      const s = f(median(x.split!));
      const g = f(median(x.single!));
      console.log(
        `${what.padEnd(24)} ${s.toFixed(1).padStart(7)}${unit} ${g.toFixed(1).padStart(7)}${unit}   ${(g / s).toFixed(2)}x`,
      );
    };
    row('`version` exec→exit', version, 'ms');
    row('exec→first cert set', first, 'ms');
    row('idle RSS', rss, 'Mi', (kb) => kb / 1024);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
