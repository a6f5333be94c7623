// Benchmark: exec of the bundled agent to its first certificate set written, against a CA on
// loopback, RSA-2048 and ECDSA P-256 side by side; then the idle daemon's resident memory beside
// an idle bare `node` measured at the same moment; then memory over many rotations.
//
//   npm run build && npx tsx bench/cert-start.ts [runs=11] [rotations=200]
//
// Prints medians and ratios; it asserts nothing (timing claims live here, not in tests).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { startDevCa, type DevCa } from '../src/ca/index';
import { certsOnlyEnv } from '../test/helpers/certs';

const BUNDLE = path.resolve(__dirname, '../dist/istio-node-agent.cjs');
const ID = 'spiffe://cluster.local/ns/default/sa/bench';
const runs = Number(process.argv[2] ?? 11);
const rotations = Number(process.argv[3] ?? 150);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function certsDir(ca: DevCa): Promise<{ dir: string; state: string }> {
  const base = mkdtempSync(path.join(tmpdir(), 'bench-certs-'));
  const dir = path.join(base, 'certs');
  mkdirSync(dir);
  const b = await ca.issueBootstrap(ID, 3600_000, 'ECDSA');
  writeFileSync(path.join(dir, 'cert-chain.pem'), b.certChainPem);
  writeFileSync(path.join(dir, 'key.pem'), b.keyPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'root-cert.pem'), b.rootPem);
  return { dir, state: path.join(base, 'state') };
}

function startAgent(ca: DevCa, dir: string, state: string, alg: string): ChildProcess {
  return spawn(process.execPath, [BUNDLE, 'run'], {
    env: certsOnlyEnv(ca.address, dir, state, alg),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

interface Approval {
  wallMs: number;
  timing: Record<string, number>;
}

/** Resolves at each "CSR is approved" record. */
function approvals(child: ChildProcess, t0: number, on: (a: Approval) => void): void {
  const rl = readline.createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    if (!line.includes('CSR is approved successfully')) return;
    const rec = JSON.parse(line) as { timing: Record<string, number> };
    on({ wallMs: performance.now() - t0, timing: rec.timing });
  });
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function firstSet(ca: DevCa, alg: string): Promise<Approval> {
  const { dir, state } = await certsDir(ca);
  const t0 = performance.now();
  const child = startAgent(ca, dir, state, alg);
  const a = await new Promise<Approval>((resolve) => {
    approvals(child, t0, resolve);
  });
  await stop(child);
  return a;
}

async function main(): Promise<void> {
  const ca = await startDevCa({ ttlMs: 3600_000 });
  const results: Record<string, Approval[]> = { RSA: [], ECDSA: [] };
  await firstSet(ca, 'ECDSA'); // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const alg of i % 2 ? ['RSA', 'ECDSA'] : ['ECDSA', 'RSA'])
      results[alg]!.push(await firstSet(ca, alg));
  }
  console.log(`exec → first certificate set written (${runs} runs each, medians, ms)`);
  console.log('alg    wall   in-process  start-up  keyWait  csr   credential  rpc   check  write');
  for (const [alg, rs] of Object.entries(results)) {
    const m = (k: string): number => median(rs.map((r) => r.timing[k] ?? NaN));
    const startUp = median(rs.map((r) => r.timing.sinceProcessStartMs! - r.timing.totalMs!));
    console.log(
      `${alg.padEnd(6)} ${median(rs.map((r) => r.wallMs))
        .toFixed(0)
        .padStart(
          5,
        )}  ${m('sinceProcessStartMs').toFixed(0).padStart(10)}  ${startUp.toFixed(0).padStart(8)}  ${m('keyWaitMs').toFixed(1).padStart(7)}  ${m('csrMs').toFixed(1).padStart(4)}  ${m('credentialMs').toFixed(1).padStart(10)}  ${m('rpcMs').toFixed(1).padStart(4)}  ${m('checkMs').toFixed(1).padStart(5)}  ${m('writeMs').toFixed(1).padStart(5)}`,
    );
  }
  console.log(
    '(wall: spawn to the approval line; in-process: process start to set written; start-up: process start to the CSR round)',
  );

  // Idle memory beside a bare node, sampled at the same moment.
  {
    const { dir, state } = await certsDir(ca);
    const agent = startAgent(ca, dir, state, 'RSA');
    await new Promise<Approval>((resolve) => {
      approvals(agent, performance.now(), resolve);
    });
    const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], {
      stdio: 'ignore',
    });
    await new Promise((r) => setTimeout(r, 3000));
    const a = rssKb(agent.pid!);
    const b = rssKb(bare.pid!);
    console.log(
      `idle RSS: agent ${(a / 1024).toFixed(1)} MiB, bare node ${(b / 1024).toFixed(1)} MiB, ratio ${(a / b).toFixed(2)}`,
    );
    bare.kill();
    await stop(agent);
  }
  await ca.stop();

  // Memory over many rotations: a CA issuing 4-second certificates (renewed every ~2 s; X.509 times have whole seconds).
  if (rotations > 0) {
    const fast = await startDevCa({ ttlMs: 4000 });
    const { dir, state } = await certsDir(fast);
    const agent = startAgent(fast, dir, state, 'ECDSA');
    const samples: [number, number][] = [];
    let n = 0;
    await new Promise<void>((resolve) => {
      approvals(agent, performance.now(), () => {
        n++;
        if (n === 20 || n % 50 === 0) samples.push([n, rssKb(agent.pid!)]);
        if (n >= rotations) resolve();
      });
    });
    const cpu = readFileSync(`/proc/${agent.pid!}/stat`, 'utf8').split(' ');
    const ticks = Number(cpu[13]) + Number(cpu[14]);
    await stop(agent);
    await fast.stop();
    console.log(
      `rotations: ${n}; RSS (MiB) by rotation: ${samples.map(([i, kb]) => `${i}:${(kb / 1024).toFixed(1)}`).join(' ')}`,
    );
    console.log(
      `growth from rotation 20 to ${samples[samples.length - 1]![0]}: ${(((samples[samples.length - 1]![1] - samples[0]![1]) / samples[0]![1]) * 100).toFixed(1)} %; agent CPU ${(ticks / 100).toFixed(1)} s total, ${((ticks / 100 / n) * 1000).toFixed(1)} ms per rotation`,
    );
  }
}

void main();
