// Load test of the real CSR path against one dev CA on loopback: N agents' CSR loops run
// concurrently in this process, each doing what CertManager.rotateOnce does per renewal (CSR from
// the agent's key, a new gRPC-over-TLS client with the mTLS credential, the call, the checks of
// the answer), with the agent's own functions. Bounded: at most `count` CSRs and `seconds` per
// concurrency level. Prints CSRs/s, p50/p99 latency and CPU per CSR at each concurrency, with the
// CA in this process (client and CA share one event loop) and in its own process (the `dev-ca`
// command of the bundle; `npm run build` first).
//
//   npm run build && npx tsx bench/ca-load.ts [--levels 1,4,16,64] [--count 200] [--seconds 10]
//                                             [--alg RSA|ECDSA] [--only inproc|external]
//
// Keys are made before the timed part (the agent makes its next key right after each renewal,
// off the renewal's path). Every CSR uses the same bootstrap certificate as its TLS credential.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startDevCa } from '../src/ca/index';
import { createCsr } from '../src/certs/csr';
import { caConnector } from '../src/certs/index';
import { generateWorkloadKey, type WorkloadKey } from '../src/certs/keys';
import { CLOCK_SKEW_MS } from '../src/certs/round';
import { checkIssued } from '../src/certs/validate';
import type { CaConfig } from '../src/config/types';
import { chooseMtlsCredential } from '../src/identity/onprem';
import { bootstrapDir } from '../test/helpers/certs';
import { teardowns } from '../test/helpers/tmp';
import { BENCH_ID as ID, startCaProcess } from './ca-process';
import { quantile, table } from './report';
import { testConfig } from '../test/helpers/config';

interface Target {
  readonly address: string;
  readonly dir: string;
  readonly caCpuMs: () => number | undefined;
  stop(): Promise<void>;
}

interface Level {
  readonly concurrency: number;
  readonly done: number;
  readonly failed: number;
  readonly wallMs: number;
  readonly lat: number[];
  readonly cpuMs: number;
  readonly caCpuMs: number | undefined;
}

async function inProcess(alg: 'RSA' | 'ECDSA'): Promise<Target> {
  const ca = await startDevCa({ ttlMs: 3600_000, maxCallRecords: 10 });
  const files = teardowns();
  const dir = bootstrapDir(files, await ca.issueBootstrap(ID, 24 * 3600_000, alg));
  return {
    address: ca.address,
    dir,
    caCpuMs: () => undefined,
    async stop() {
      await ca.stop();
      await files.run();
    },
  };
}

async function external(alg: 'RSA' | 'ECDSA'): Promise<Target> {
  const ca = await startCaProcess({ alg });
  return {
    address: ca.address,
    dir: ca.bootstrapDir,
    caCpuMs: () => ca.cpuMs(),
    stop: () => ca.stop(),
  };
}

/** One renewal as CertManager.rotateOnce makes it, minus the key wait and the disk write. */
async function oneCsr(ca: CaConfig, key: WorkloadKey, cred: Credential): Promise<void> {
  const csrPem = await createCsr(key, ID, ca.org);
  const client = await caConnector()(chooseMtlsCredential(cred, {}, Date.now()), cred.rootPem, ca);
  let response: string[];
  try {
    response = await client.sign({ csrPem, identity: ID, ttlMs: ca.certTtlMs });
  } finally {
    client.close();
  }
  checkIssued({
    response,
    key: key.object,
    identity: ID,
    rootPem: cred.rootPem,
    now: Date.now(),
    skewMs: CLOCK_SKEW_MS,
    ttlMs: ca.certTtlMs,
  });
}

interface Credential {
  readonly keyPem: string;
  readonly chainPem: string;
  readonly rootPem: string;
}

async function level(
  t: Target,
  ca: CaConfig,
  keys: WorkloadKey[],
  cred: Credential,
  concurrency: number,
  count: number,
  seconds: number,
): Promise<Level> {
  const lat: number[] = [];
  let started = 0;
  let failed = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const ca0 = t.caCpuMs();
  const stopAt = t0 + seconds * 1000;
  const worker = async (k: WorkloadKey): Promise<void> => {
    while (started < count && performance.now() < stopAt) {
      started++;
      const s = performance.now();
      try {
        await oneCsr(ca, k, cred);
        lat.push(performance.now() - s);
      } catch (e) {
        failed++;
        if (failed === 1) console.error(`  first failure: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(keys.slice(0, concurrency).map(worker));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const ca1 = t.caCpuMs();
  return {
    concurrency,
    done: lat.length,
    failed,
    wallMs,
    lat: lat.sort((a, b) => a - b),
    cpuMs: (cpu.user + cpu.system) / 1000,
    caCpuMs: ca0 === undefined || ca1 === undefined ? undefined : ca1 - ca0,
  };
}

async function run(
  name: string,
  t: Target,
  alg: 'RSA' | 'ECDSA',
  levels: number[],
  count: number,
  seconds: number,
): Promise<string[][]> {
  const ca = testConfig({
    CITADEL_ADDRESS: t.address,
    CERTS_DIR: t.dir,
    WORKLOAD_KEY_ALGORITHM: alg,
  }).ca;
  const read = (f: string): string => readFileSync(path.join(t.dir, f), 'utf8');
  const cred = {
    keyPem: read('key.pem'),
    chainPem: read('cert-chain.pem'),
    rootPem: read('root-cert.pem'),
  };
  const max = Math.max(...levels);
  const keys = await Promise.all(
    Array.from({ length: max }, () => generateWorkloadKey(alg, ca.rsaKeySize)),
  );
  await level(t, ca, keys, cred, 4, 20, seconds); // warm-up: JIT, TLS session setup code
  const rows: string[][] = [];
  for (const c of levels) {
    const r = await level(t, ca, keys, cred, c, count, seconds);
    rows.push([
      name,
      String(c),
      r.failed ? `${r.done} (${r.failed} failed)` : String(r.done),
      ((r.done / r.wallMs) * 1000).toFixed(1),
      quantile(r.lat, 0.5).toFixed(1),
      quantile(r.lat, 0.99).toFixed(1),
      (r.cpuMs / r.done).toFixed(2),
      r.caCpuMs === undefined ? '-' : (r.caCpuMs / r.done).toFixed(2),
      r.caCpuMs === undefined ? '-' : `${((r.caCpuMs / r.wallMs) * 100).toFixed(0)} %`,
      r.caCpuMs === undefined ? '-' : ((1000 * r.done) / r.caCpuMs).toFixed(0),
    ]);
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      levels: { type: 'string', default: '1,4,16,64' },
      count: { type: 'string', default: '200' },
      seconds: { type: 'string', default: '10' },
      alg: { type: 'string', default: 'RSA' },
      only: { type: 'string' },
    },
  });
  const levels = values.levels.split(',').map(Number);
  const count = Number(values.count);
  const seconds = Number(values.seconds);
  const alg = values.alg.toUpperCase();
  if (alg !== 'RSA' && alg !== 'ECDSA') throw new Error('--alg is RSA or ECDSA');
  if (levels.some((l) => !(l >= 1)) || !(count >= 1) || !(seconds > 0))
    throw new Error('--levels, --count and --seconds must be positive');
  const rows: string[][] = [];
  if (values.only !== 'external') {
    const t = await inProcess(alg);
    try {
      rows.push(...(await run('in-proc', t, alg, levels, count, seconds)));
    } finally {
      await t.stop();
    }
  }
  if (values.only !== 'inproc') {
    const t = await external(alg);
    try {
      rows.push(...(await run('external', t, alg, levels, count, seconds)));
    } finally {
      await t.stop();
    }
  }
  console.log(
    `CSR path against one dev CA on loopback (HandleCSR, mTLS, a new channel per CSR as the agent does; ${alg} keys and credential; ≤ ${count} CSRs or ${seconds} s per level)`,
  );
  console.log(
    table(
      [
        'CA',
        'conc.',
        'CSRs',
        'CSR/s',
        'p50 ms',
        'p99 ms',
        'cpu ms/CSR',
        'CA cpu ms/CSR',
        'CA busy',
        'CA CSR/s/core',
      ],
      rows,
    ),
  );
  console.log(
    'cpu ms/CSR: this process (in-proc: client and CA; external: the clients only); CA busy: CA CPU time / wall time\n' +
      '(100 % = one core); CA CSR/s/core: CSRs per second of CA CPU, what one core of this machine gives the CA when nothing else runs',
  );
}

void main();
