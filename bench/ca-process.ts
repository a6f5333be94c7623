// The dev CA in its own process (the bundle's `dev-ca` command; `npm run build` first), so a
// benchmark's CA work does not share an event loop or a CPU account with what is measured, and
// fresh CERTS_DIRs holding the bootstrap set it wrote.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export const BUNDLE = path.resolve(__dirname, '../dist/istio-node-agent.cjs');
export const BENCH_ID = 'spiffe://cluster.local/ns/default/sa/bench';
const TICK_MS = 10; // /proc/<pid>/stat counts in 1/100 s

export interface CaProcess {
  readonly address: string;
  readonly pid: number;
  /** The bootstrap set (cert-chain.pem, key.pem, root-cert.pem) issued for BENCH_ID. */
  readonly bootstrapDir: string;
  /** CPU time (user + system) the CA process has used so far, ms (10 ms resolution). */
  cpuMs(): number;
  stop(): Promise<void>;
}

export interface CaProcessOptions {
  /** Key of the bootstrap set. */
  readonly alg: 'RSA' | 'ECDSA';
  /** Lifetime of issued workload certificates (dev-ca --ttl), default 1h. */
  readonly ttl?: string;
  /** Lifetime of the bootstrap certificate, default 24h. */
  readonly bootstrapTtl?: string;
}

export async function startCaProcess(o: CaProcessOptions): Promise<CaProcess> {
  const work = mkdtempSync(path.join(tmpdir(), 'bench-ca-'));
  const bootstrapDir = path.join(work, 'bootstrap');
  const child = spawn(
    process.execPath,
    [
      BUNDLE,
      'dev-ca',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      path.join(work, 'ca'),
      '--ttl',
      o.ttl ?? '1h',
      '--bootstrap-identity',
      BENCH_ID,
      '--bootstrap-dir',
      bootstrapDir,
      '--bootstrap-key',
      o.alg,
      '--bootstrap-ttl',
      o.bootstrapTtl ?? '24h',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => {
      reject(new Error(`dev-ca exited with ${code} (is dist/ built? npm run build)`));
    });
    child.stdout.on('data', (b: Buffer) => {
      resolve(b.toString());
    });
  });
  const m = /listening on (\S+)/.exec(line);
  if (!m) throw new Error(`dev-ca said: ${line}`);
  return {
    address: m[1]!,
    pid: child.pid!,
    bootstrapDir,
    cpuMs() {
      // Fields after the command name: state is [0], utime [11], stime [12].
      const f = readFileSync(`/proc/${child.pid!}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * TICK_MS;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A fresh CERTS_DIR with a copy of the bootstrap set, and a state directory beside it. */
export function freshCertsDir(ca: CaProcess): { dir: string; state: string; remove(): void } {
  const base = mkdtempSync(path.join(tmpdir(), 'bench-certs-'));
  const dir = path.join(base, 'certs');
  mkdirSync(dir);
  for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem'])
    copyFileSync(path.join(ca.bootstrapDir, f), path.join(dir, f));
  return {
    dir,
    state: path.join(base, 'state'),
    remove: () => {
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** The resident set of a process, in KiB (VmRSS). */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

/** SIGTERM, and wait for the exit (at once if it has already exited). */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}
