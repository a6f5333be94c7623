// Benchmark: memory over thousands of rotations, in one process. Drives the certificate
// component's rotate() back to back against the embedded CA (same process), and prints heap
// and RSS after a forced GC every few hundred rotations. Growth here would be a leak.
//
//   node --expose-gc --import tsx bench/cert-rotations.ts [rotations=2000] [--external-ca]
//
// --external-ca runs the CA as its own process (`dev-ca`, from dist/: npm run build first), so
// the numbers are the agent's alone.
import { EventEmitter } from 'node:events';
import type { AgentEventMap } from '../src/component';
import { startDevCa } from '../src/ca/index';
import { buildCertManager } from '../src/certs/index';
import { bootstrapDir } from '../test/helpers/certs';
import { teardowns } from '../test/helpers/tmp';
import { BENCH_ID as ID, startCaProcess } from './ca-process';
import { testConfig } from '../test/helpers/config';
import { testDeps } from '../test/helpers/deps';

const total = Number(process.argv[2] ?? 2000);
const gc = (globalThis as { gc?: () => void }).gc;

async function main(): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc');
  const { address, dir, stopCa } = process.argv.includes('--external-ca')
    ? await externalCa()
    : await inProcessCa();
  const mgr = await buildCertManager(
    testConfig({
      CITADEL_ADDRESS: address,
      CERTS_DIR: dir,
      WORKLOAD_KEY_ALGORITHM: 'ECDSA',
      ISTIO_CAPTURE: 'false',
      SIDECAR_MODE: 'none',
    }),
    // No per-rotation record kept: only fatal records, and events no one listens to.
    {
      ...testDeps({ random: Math.random, level: 'fatal' }),
      events: new EventEmitter<AgentEventMap>(),
    },
    { keyOwner: 'none' },
  );
  await mgr.start(new AbortController().signal);
  const rows: string[] = [];
  const sample = (n: number): { heap: number; rss: number } => {
    gc();
    const m = process.memoryUsage();
    rows.push(
      `${String(n).padStart(6)}  heap ${(m.heapUsed / 2 ** 20).toFixed(1).padStart(6)} MiB  rss ${(m.rss / 2 ** 20).toFixed(1).padStart(6)} MiB`,
    );
    return { heap: m.heapUsed, rss: m.rss };
  };
  const t0 = performance.now();
  let first: { heap: number; rss: number } | undefined;
  for (let i = 1; i <= total; i++) {
    if (!(await mgr.rotate()))
      throw new Error(`rotation ${i} failed: ${mgr.status().problem ?? ''}`);
    if (i === 100) first = sample(i);
    else if (i % 250 === 0) sample(i);
  }
  const last = sample(total);
  const ms = performance.now() - t0;
  await mgr.stop();
  await stopCa();
  console.log(rows.join('\n'));
  console.log(
    `${total} rotations in ${(ms / 1000).toFixed(1)} s (${(ms / total).toFixed(1)} ms each, CA included); heap after GC from rotation 100 to ${total}: ${(((last.heap - first!.heap) / first!.heap) * 100).toFixed(1)} %, rss ${(((last.rss - first!.rss) / first!.rss) * 100).toFixed(1)} %`,
  );
}

async function inProcessCa(): Promise<{
  address: string;
  dir: string;
  stopCa: () => Promise<void>;
}> {
  const ca = await startDevCa({ ttlMs: 3600_000, maxCallRecords: 10 });
  const files = teardowns();
  const dir = bootstrapDir(files, await ca.issueBootstrap(ID, 3600_000));
  return {
    address: ca.address,
    dir,
    stopCa: async () => {
      await ca.stop();
      await files.run();
    },
  };
}

async function externalCa(): Promise<{
  address: string;
  dir: string;
  stopCa: () => Promise<void>;
}> {
  const ca = await startCaProcess({ alg: 'ECDSA', bootstrapTtl: '2160h' });
  return { address: ca.address, dir: ca.bootstrapDir, stopCa: () => ca.stop() };
}

void main();
