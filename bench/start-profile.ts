// Where the time goes from exec to the first certificate set written, in the bundle as `run`
// executes it (certificates only, a CA in its own process on loopback). Two kinds of runs,
// interleaved, RSA and ECDSA:
//   traced:   a preload script (`node --require`) marks milestones with the monotonic clock and the
//             process's CPU time: node bootstrapped, bundle compiled and its top level run, key
//             generation started/done, TLS context made, TLS connect, handshake done; the agent's
//             own log line gives the set-written moment and its per-step timing;
//   profiled: the same with `--cpu-prof` (250 µs) on a source-mapped build of the same bundle;
//             every sample up to the set written is attributed to a package through the source
//             map and to a phase by the traced milestones: module initialisation (compiling and
//             running a module's top level, builtins it requires included), work at run time, the
//             bundle's compile, node's own bootstrap, GC, and idle (waiting on the key, the CA, I/O).
// Last, the first TLS context's cost in a fresh node, and the set write's fsync pattern (a model of
// CertStore.write's) against a concurrent one.
//
//   npm run build && npx tsx bench/start-profile.ts [runs=7]
//
// CPU profiles sample wall time on the main thread: on a loaded machine a descheduled thread's
// gap is charged to the sample that follows it, so read the CPU table for proportions and the
// milestones for the timeline; both are medians over runs. Nothing is asserted.
import { spawn, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  promises as fs,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { SourceMap } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { certsOnlyEnv } from '../test/helpers/certs';
import { freshCertsDir, startCaProcess, type CaProcess } from './ca-process';
import { median, table } from './report';

const ROOT = path.resolve(__dirname, '..');
const runs = Number(process.argv[2] ?? 7);

/** Preload: marks as [name, ms since process start, CPU ms so far]; written at exit. */
const TRACER = String.raw`'use strict';
const fs = require('fs');
const out = process.env.BENCH_TRACE_OUT;
delete process.env.BENCH_TRACE_OUT;
const marks = [];
const mark = (name) => {
  const c = process.cpuUsage();
  marks.push([name, performance.now(), (c.user + c.system) / 1000]);
};
// Monotonic clock (µs, the CPU profile's clock) at process start.
const originUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
mark('node bootstrapped');
const Module = require('module');
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  if (filename !== process.env.BENCH_BUNDLE) return compile.apply(this, arguments);
  mark('bundle compile starts');
  try { return compile.apply(this, arguments); } finally { mark('bundle top level done'); }
};
// crypto and tls are patched when the bundle first asks for them, so the preload loads nothing.
const patch = {
  crypto(crypto) {
    const gen = crypto.generateKeyPair;
    crypto.generateKeyPair = function (...a) {
      mark('key generation starts');
      const cb = a[a.length - 1];
      a[a.length - 1] = (...r) => { mark('key generated'); cb(...r); };
      return gen.apply(this, a);
    };
    // RSA keys are made from two primes drawn at once (src/certs/rsa-key.ts): the key starts
    // with the first prime and is there when the last pending one is.
    const prime = crypto.generatePrime;
    let pending = 0;
    crypto.generatePrime = function (...a) {
      if (pending++ === 0) mark('key generation starts');
      const cb = a[a.length - 1];
      a[a.length - 1] = (...r) => { if (--pending === 0) mark('key generated'); cb(...r); };
      return prime.apply(this, a);
    };
  },
  tls(tls) {
    const csc = tls.createSecureContext;
    tls.createSecureContext = function (...a) {
      mark('TLS context starts');
      try { return csc.apply(this, a); } finally { mark('TLS context made'); }
    };
    const connect = tls.connect;
    tls.connect = function (...a) {
      mark('TLS connect');
      const s = connect.apply(this, a);
      s.once('secureConnect', () => mark('TLS handshake done'));
      return s;
    };
  },
};
const load = Module._load;
Module._load = function (request) {
  const m = load.apply(this, arguments);
  const name = String(request).replace(/^node:/, '');
  const p = patch[name];
  if (p) { delete patch[name]; p(m); }
  return m;
};
process.on('exit', () => fs.writeFileSync(out, JSON.stringify({ originUs, marks })));
`;

type Mark = [string, number, number];
interface Run {
  readonly alg: string;
  readonly marks: Mark[];
  readonly originUs: number;
  /** The agent's timing record: ms since process start when the set was written, and steps. */
  readonly timing: Record<string, number>;
  readonly profile?: string;
}

async function once(
  ca: CaProcess,
  work: string,
  bundle: string,
  alg: string,
  n: number,
  profile: boolean,
): Promise<Run> {
  const certs = freshCertsDir(ca);
  const traceOut = path.join(work, `trace-${n}.json`);
  const profDir = path.join(work, `prof-${n}`);
  const args = [
    '--require',
    path.join(work, 'tracer.cjs'),
    ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '250'] : []),
    bundle,
    'run',
  ];
  const child = spawn(process.execPath, args, {
    env: {
      ...certsOnlyEnv(ca.address, certs.dir, certs.state, alg),
      BENCH_TRACE_OUT: traceOut,
      BENCH_BUNDLE: bundle,
      // The round's timing is a debug record ("CSR round timing"), logged before the approval.
      ISTIO_AGENT_LOG_LEVEL: 'debug',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let done = false;
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const timing = await new Promise<Record<string, number>>((resolve, reject) => {
    void exited.then((code) => {
      if (!done) reject(new Error(`agent exited with ${code} before a certificate`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.includes('CSR round timing')) return;
      done = true;
      resolve((JSON.parse(line) as { timing: Record<string, number> }).timing);
    });
  });
  child.kill('SIGTERM');
  await exited;
  certs.remove();
  const t = JSON.parse(readFileSync(traceOut, 'utf8')) as { originUs: number; marks: Mark[] };
  const prof = profile
    ? path.join(
        profDir,
        readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'))!,
      )
    : undefined;
  return { alg, marks: t.marks, originUs: t.originUs, timing, ...(prof ? { profile: prof } : {}) };
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Package of a source path: `@scope/name`, `name`, or `src/<folder>`. */
function packageOf(source: string | undefined): string {
  if (!source) return '(bundle, unmapped)';
  const i = source.lastIndexOf('node_modules/');
  if (i >= 0) {
    const p = source.slice(i + 13).split('/');
    return p[0]!.startsWith('@') ? `${p[0]}/${p[1]}` : p[0]!;
  }
  const j = source.indexOf('src/');
  if (j < 0) return source;
  const p = source.slice(j).split('/');
  return p.length > 2 ? `${p[0]}/${p[1]}` : p.join('/');
}

const MODULE_PATH = /^(?:node_modules|src)\/.*\.(?:[cm]?js|ts)$/;

/** ms of samples per [category, phase], up to `endMs` after process start. */
function attribute(
  run: Run,
  bundleUrl: string,
  map: SourceMap,
  phases: { name: string; untilMs: number }[],
): Map<string, number[]> {
  const p = JSON.parse(readFileSync(run.profile!, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const memo = new Map<number, string>();
  const source = (cf: { lineNumber: number; columnNumber: number }): string | undefined =>
    (map.findEntry(cf.lineNumber, cf.columnNumber) as { originalSource?: string }).originalSource;
  const category = (id: number): string => {
    const hit = memo.get(id);
    if (hit !== undefined) return hit;
    const leaf = byId.get(id)!.callFrame;
    let r: string | undefined;
    if (leaf.functionName === '(garbage collector)') r = 'GC';
    else if (leaf.functionName === '(idle)') r = 'idle (waiting)';
    else if (leaf.functionName === '(program)') r = '(program: native, no JS stack)';
    let runPkg: string | undefined;
    let leafBuiltin: string | undefined;
    for (let cur: number | undefined = id; r === undefined && cur !== undefined;) {
      const cf = byId.get(cur)!.callFrame;
      if (cf.url.startsWith('node:') && leafBuiltin === undefined) leafBuiltin = cf.url.slice(5);
      if (cf.url === 'node:internal/modules/cjs/loader' && cf.functionName === 'wrapSafe')
        r = 'compile the bundle (V8 parse)';
      else if (cf.url === bundleUrl) {
        if (MODULE_PATH.test(cf.functionName)) r = `load ${packageOf(cf.functionName)}`;
        else runPkg ??= packageOf(source(cf));
      }
      cur = parent.get(cur);
    }
    if (r === undefined && runPkg !== undefined)
      r = `run ${runPkg}${leafBuiltin ? ` → ${leafBuiltin.replace(/^internal\//, '')}` : ''}`;
    if (r === undefined) r = 'node itself (no bundle frame)';
    memo.set(id, r);
    return r;
  };
  const out = new Map<string, number[]>();
  let t = (p.startTime - run.originUs) / 1000; // ms since process start
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]! / 1000;
    const ph = phases.findIndex((x) => t <= x.untilMs);
    if (ph < 0) break;
    const c = category(p.samples[i]!);
    const row = out.get(c) ?? phases.map(() => 0);
    row[ph]! += p.timeDeltas[i]! / 1000;
    out.set(c, row);
  }
  return out;
}

/**
 * The set write's fsync pattern, modelled on CertStore.write (four small files written and fsynced
 * in a new directory, then the directory and its parent fsynced): one file after another as the
 * store does, against all four at once (proposed). Interleaved; returns the two medians.
 */
async function writePattern(dir: string, rounds: number): Promise<{ seq: number; par: number }> {
  const files: [string, number][] = [
    ['key.pem', 1700],
    ['cert-chain.pem', 1500],
    ['root-cert.pem', 700],
    ['..meta.json', 200],
  ];
  const syncDir = async (d: string): Promise<void> => {
    const h = await fs.open(d, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  };
  const one = async (d: string, name: string, size: number): Promise<void> => {
    const fh = await fs.open(path.join(d, name), 'wx', 0o600);
    try {
      await fh.writeFile('x'.repeat(size));
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  let n = 0;
  const variants = {
    seq: async (d: string) => {
      for (const [name, size] of files) await one(d, name, size);
    },
    par: async (d: string) => {
      await Promise.all(files.map(([name, size]) => one(d, name, size)));
    },
  };
  const times: Record<'seq' | 'par', number[]> = { seq: [], par: [] };
  for (let i = 0; i < rounds; i++) {
    for (const k of i % 2 ? (['seq', 'par'] as const) : (['par', 'seq'] as const)) {
      const d = path.join(dir, `w${n++}`);
      const t0 = performance.now();
      await fs.mkdir(d);
      await variants[k](d);
      await syncDir(d);
      await syncDir(dir);
      times[k].push(performance.now() - t0);
    }
  }
  return { seq: median(times.seq), par: median(times.par) };
}

/**
 * The first `tls.createSecureContext({ ca })` in a fresh node, and a second one in the same process:
 * node builds its root store (parsing its bundled root certificates) on the first, even though
 * `ca` replaces them. With NODE_EXTRA_CA_CERTS set node does that during its own start instead;
 * with --use-openssl-ca (the unit's NODE_OPTIONS) the store is OpenSSL's, looked up on demand.
 */
function tlsContextCost(caFile: string, rounds: number): Record<string, [number, number]> {
  const script = `const tls = require('tls'); const ca = require('fs').readFileSync(process.argv[1]);
let t = performance.now(); tls.createSecureContext({ ca }); const a = performance.now() - t;
t = performance.now(); tls.createSecureContext({ ca }); const b = performance.now() - t;
process.stdout.write(JSON.stringify([a, b]));`;
  const envs: Record<string, Record<string, string>> = {
    'clean environment': { PATH: '/usr/bin:/bin' },
    'NODE_EXTRA_CA_CERTS set': { PATH: '/usr/bin:/bin', NODE_EXTRA_CA_CERTS: caFile },
    // What the unit sets (systemd/istio-auth-node-agent.service).
    'NODE_OPTIONS=--use-openssl-ca': { PATH: '/usr/bin:/bin', NODE_OPTIONS: '--use-openssl-ca' },
  };
  const got: Record<string, [number, number][]> = {};
  for (let i = 0; i < rounds; i++) {
    for (const [name, env] of Object.entries(envs)) {
      const r = spawnSync(process.execPath, ['-e', script, caFile], { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tls context probe: ${r.stderr}`);
      (got[name] ??= []).push(JSON.parse(r.stdout) as [number, number]);
    }
  }
  return Object.fromEntries(
    Object.entries(got).map(([k, v]) => [
      k,
      [median(v.map((x) => x[0])), median(v.map((x) => x[1]))],
    ]),
  );
}

const at = (r: Run, name: string): number => r.marks.find((m) => m[0] === name)?.[1] ?? NaN;

async function main(): Promise<void> {
  const load = loadavg()[0]!;
  const work = mkdtempSync(path.join(tmpdir(), 'bench-profile-'));
  const ca = await startCaProcess({ alg: 'ECDSA' });
  try {
    writeFileSync(path.join(work, 'tracer.cjs'), TRACER);
    const bundle = path.join(work, 'agent.cjs');
    const meta = path.join(work, 'meta.json');
    const b = spawnSync(
      process.execPath,
      ['scripts/build.mjs', '--outfile', bundle, '--sourcemap', '--metafile', meta],
      { cwd: ROOT, encoding: 'utf8' },
    );
    if (b.status !== 0) throw new Error(`build: ${b.stderr}`);
    const all: Run[] = [];
    await once(ca, work, bundle, 'ECDSA', -1, false); // page cache
    let n = 0;
    for (let i = 0; i < runs; i++)
      for (const alg of i % 2 ? ['RSA', 'ECDSA'] : ['ECDSA', 'RSA'])
        for (const profile of [false, true])
          all.push(await once(ca, work, bundle, alg, n++, profile));

    console.log(
      `exec → first set written, bundle \`run\`, certificates only; ${runs} traced and ${runs} profiled runs per key type; load average ${load.toFixed(1)} → ${loadavg()[0]!.toFixed(1)} (2 cores)`,
    );
    // Milestones.
    const names = [
      'node bootstrapped',
      'bundle compile starts',
      'bundle top level done',
      'key generation starts',
      'key generated',
      'TLS context starts',
      'TLS context made',
      'TLS connect',
      'TLS handshake done',
    ];
    const rows: string[][] = [];
    for (const name of [...names, 'set written']) {
      const row = [name];
      for (const alg of ['RSA', 'ECDSA']) {
        const rs = all.filter((r) => r.alg === alg && !r.profile);
        const ms = (r: Run): number =>
          name === 'set written' ? r.timing.sinceProcessStartMs! : at(r, name);
        const cpu = (r: Run): number => r.marks.find((m) => m[0] === name)?.[2] ?? NaN;
        row.push(
          median(rs.map(ms)).toFixed(0),
          name === 'set written' ? '' : median(rs.map(cpu)).toFixed(0),
        );
      }
      rows.push(row);
    }
    console.log(
      '\nmilestones (traced runs; medians, ms since the process started, and its CPU ms by then)',
    );
    console.log(table(['', 'RSA at', 'CPU', 'ECDSA at', 'CPU'], rows));
    for (const alg of ['RSA', 'ECDSA']) {
      const rs = all.filter((r) => r.alg === alg && !r.profile);
      const step = (k: string): string => median(rs.map((r) => r.timing[k] ?? NaN)).toFixed(1);
      console.log(
        `${alg} CSR round (agent's log): key wait ${step('keyWaitMs')}, CSR ${step('csrMs')}, credential ${step('credentialMs')}, ` +
          `connect+TLS+call ${step('rpcMs')}, checks ${step('checkMs')}, write ${step('writeMs')} ms`,
      );
    }

    // CPU attribution by phase.
    const map = new SourceMap(JSON.parse(readFileSync(`${bundle}.map`, 'utf8')));
    const url = `file://${bundle}`;
    for (const alg of ['RSA', 'ECDSA']) {
      const rs = all.filter((r) => r.alg === alg && r.profile);
      const per = rs.map((r) =>
        attribute(r, url, map, [
          { name: 'bootstrap', untilMs: at(r, 'bundle compile starts') },
          { name: 'bundle', untilMs: at(r, 'bundle top level done') },
          { name: 'to CSR', untilMs: at(r, 'TLS connect') },
          { name: 'CSR', untilMs: r.timing.sinceProcessStartMs! },
        ]),
      );
      const cats = new Set(per.flatMap((m) => [...m.keys()]));
      const rowsCpu = [...cats]
        .map((c) => {
          const cols = [0, 1, 2, 3].map((k) => median(per.map((m) => m.get(c)?.[k] ?? 0)));
          return {
            c,
            cols,
            total: median(per.map((m) => (m.get(c) ?? []).reduce((a, b) => a + b, 0))),
          };
        })
        .filter((x) => x.total >= 1.5)
        .sort((a, b) => b.total - a.total);
      console.log(
        `\n${alg}: profiled samples (wall ms on the main thread) by what ran, per phase: node bootstrap | compile and run the bundle's top level | to the CSR (config, components, key, CSR) | the CSR (TLS, call, checks, write); medians over ${rs.length} runs`,
      );
      console.log(
        table(
          ['', 'bootstrap', 'bundle', 'to CSR', 'CSR', 'total'],
          rowsCpu.map((x) => [x.c, ...x.cols.map((v) => v.toFixed(1)), x.total.toFixed(1)]),
        ),
      );
    }

    // What the bundle holds.
    const m = JSON.parse(readFileSync(meta, 'utf8')) as {
      outputs: Record<
        string,
        { entryPoint?: string; inputs: Record<string, { bytesInOutput: number }> }
      >;
    };
    const output = Object.values(m.outputs).find((o) => o.entryPoint)!;
    const bytes = new Map<string, number>();
    for (const [f, v] of Object.entries(output.inputs))
      bytes.set(packageOf(f), (bytes.get(packageOf(f)) ?? 0) + v.bytesInOutput);
    const total = [...bytes.values()].reduce((a, b) => a + b, 0);
    const top = [...bytes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
    console.log(
      `\nbundle: ${(total / 1024).toFixed(0)} KiB of code; largest: ${top.map(([k, v]) => `${k} ${(v / 1024).toFixed(0)}`).join(', ')} KiB`,
    );

    const tlsCost = tlsContextCost(path.join(ca.bootstrapDir, 'root-cert.pem'), 11);
    console.log(
      `first / second tls.createSecureContext({ ca }) in a fresh node (11 interleaved runs, medians): ` +
        Object.entries(tlsCost)
          .map(([k, [a, b]]) => `${k} ${a.toFixed(1)} / ${b.toFixed(1)} ms`)
          .join('; '),
    );

    // The write's fsyncs, on the file system of the CERTS_DIRs above.
    const wdir = path.join(work, 'write');
    mkdirSync(wdir);
    const w = await writePattern(wdir, 21);
    console.log(
      `set write fsync pattern (model of CertStore.write, 21 interleaved rounds): four files one after another ${w.seq.toFixed(1)} ms, ` +
        `all four at once (proposed) ${w.par.toFixed(1)} ms, ratio ${(w.seq / w.par).toFixed(2)}`,
    );
  } finally {
    await ca.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

void main();
