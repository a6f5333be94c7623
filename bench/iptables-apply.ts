// Whole-process `istio-node-agent iptables apply` against the same ruleset applied the way
// Istio 1.0's istio-iptables.sh does it (one iptables process per chain and rule, 37 for this
// config), side by side: each run uses a fresh network namespace, the order alternates, and the
// medians and their ratio are printed. Also the daemon's in-process apply, check and clean.
//
//   npm run build && npx tsx bench/iptables-apply.ts [runs]      (root; default 15 runs)
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { InprocResult } from './iptables-apply-inproc';

const root = path.resolve(__dirname, '..');
const DIST = path.join(root, 'dist/istio-node-agent.cjs');
const SCRIPT = path.join(root, 'bench/istio-iptables-1.0.sh');
const INPROC = path.join(root, 'bench/iptables-apply-inproc.ts');
const RUNS = Number(process.argv[2] ?? 15);

if (process.getuid?.() !== 0) {
  console.error('bench/iptables-apply.ts needs root (it creates network namespaces)');
  process.exit(2);
}
if (!existsSync(DIST)) {
  console.error(`${DIST} is missing; run \`npm run build\` first`);
  process.exit(2);
}

const dir = mkdtempSync(path.join(tmpdir(), 'nf-bench-'));
const clusterEnv = path.join(dir, 'cluster.env');
// Two CIDRs, an exclusion, two inbound ports; the proxy user is `nobody` for both.
writeFileSync(
  clusterEnv,
  [
    'ISTIO_SERVICE_CIDR=10.96.0.0/16,10.100.0.0/16',
    'ISTIO_SERVICE_EXCLUDE_CIDR=10.96.5.0/24',
    'ISTIO_INBOUND_PORTS=8080,9090',
    'ENVOY_USER=nobody',
    '',
  ].join('\n'),
);
const baseEnv = {
  PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  ISTIO_CLUSTER_CONFIG: clusterEnv,
  ISTIO_SIDECAR_CONFIG: '/dev/null',
};

interface Variant {
  readonly name: string;
  readonly cmd: readonly string[];
  readonly env: Record<string, string>;
}
let stateN = 0;
const variants: Variant[] = [
  {
    name: 'ours: node dist/istio-node-agent.cjs iptables apply',
    cmd: ['node', DIST, 'iptables', 'apply'],
    env: {},
  },
  // ENABLE_INBOUND_IPV6 only keeps 1.0 from flushing ip6tables INPUT, so both install the same rules.
  {
    name: '1.0: istio-iptables.sh (37 iptables calls + EXIT dump)',
    cmd: ['bash', SCRIPT],
    env: { ENABLE_INBOUND_IPV6: '1' },
  },
  {
    name: '1.0: the 37 iptables calls only (no EXIT dump)',
    cmd: ['bash', SCRIPT],
    env: { ENABLE_INBOUND_IPV6: '1', BENCH_SKIP_DUMP: '1' },
  },
  { name: 'baseline: ip netns exec true', cmd: ['true'], env: {} },
];

function freshNs(): string {
  const name = `nf-bench-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

function delNs(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name]);
  } catch {
    /* gone */
  }
}

function timed(ns: string, v: Variant): Promise<{ ms: number; out: string }> {
  return new Promise((resolve, reject) => {
    const env = {
      ...baseEnv,
      ...v.env,
      ISTIO_AGENT_STATE_DIR: path.join(dir, `state-${stateN++}`),
    };
    const t0 = process.hrtime.bigint();
    const child = spawn('ip', ['netns', 'exec', ns, ...v.cmd], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`${v.name} exited ${code}: ${err}`));
      else resolve({ ms, out });
    });
  });
}

function save(ns: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'iptables-save'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .join('\n');
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  // The two must install the same ruleset, or the comparison means nothing.
  const saves: string[] = [];
  for (const v of variants.slice(0, 2)) {
    const ns = freshNs();
    try {
      await timed(ns, v);
      saves.push(save(ns));
    } finally {
      delNs(ns);
    }
  }
  const same = saves[0] === saves[1];
  console.log(`same ruleset (iptables-save after each): ${same ? 'yes' : 'NO'}`);
  if (!same) console.log(`--- ours\n${saves[0]}\n--- 1.0\n${saves[1]}`);

  const times = variants.map(() => [] as number[]);
  for (let i = 0; i < RUNS; i++) {
    // Rotate the order so neither side always runs first (caches, CPU frequency).
    for (let k = 0; k < variants.length; k++) {
      const j = (i + k) % variants.length;
      const ns = freshNs();
      try {
        times[j]!.push((await timed(ns, variants[j]!)).ms);
      } finally {
        delNs(ns);
      }
    }
  }
  const inproc: InprocResult[] = [];
  for (let i = 0; i < Math.min(RUNS, 10); i++) {
    const ns = freshNs();
    try {
      const r = await timed(ns, {
        name: 'in-process',
        cmd: ['node', '--import', 'tsx', INPROC],
        env: {},
      });
      inproc.push(JSON.parse(r.out) as InprocResult);
    } finally {
      delNs(ns);
    }
  }

  const med = times.map(median);
  const [ours, full, strict, base] = med as [number, number, number, number];
  console.log(
    `\n${RUNS} runs each, alternating, each in a fresh network namespace (nft backend: ${execFileSync('iptables', ['-V'], { encoding: 'utf8' }).trim()})`,
  );
  variants.forEach((v, i) => {
    const xs = times[i]!;
    console.log(
      `  ${v.name.padEnd(58)} median ${med[i]!.toFixed(1).padStart(7)} ms  (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`,
    );
  });
  console.log(
    `\nratio ours / 1.0 script:             ${(ours / full).toFixed(2)}   (target <= 0.50)`,
  );
  console.log(`ratio ours / 37 iptables calls only:  ${(ours / strict).toFixed(2)}`);
  console.log(
    `same, minus the ip netns exec baseline: ${((ours - base) / (full - base)).toFixed(2)} and ${((ours - base) / (strict - base)).toFixed(2)}`,
  );
  console.log(
    `\nin-process (daemon, no Node start-up), median of ${inproc.length}: apply ${median(inproc.map((x) => x.apply)).toFixed(1)} ms, ` +
      `drift check in sync ${median(inproc.map((x) => x.check)).toFixed(1)} ms, clean ${median(inproc.map((x) => x.clean)).toFixed(1)} ms`,
  );
  console.log(
    `one iptables-restore --noflush of the same rules, same namespaces: ${median(inproc.map((x) => x.restore)).toFixed(1)} ms; ` +
      `apply (as the capture component's start reads and applies) / restore, paired: ${median(inproc.map((x) => x.ratio)).toFixed(2)}× (goal ≤ 2); ` +
      `programs started by an apply: ${inproc[0]?.programs.join(', ') ?? '-'}`,
  );
  console.log(
    `the same apply reading ip6tables too (start before issue 13): ${median(inproc.map((x) => x.both)).toFixed(1)} ms, ` +
      `/ restore, paired: ${median(inproc.map((x) => x.bothRatio)).toFixed(2)}×`,
  );
  console.log(
    `the component's whole start (the apply under the host lock: one flock(1) more): ${median(inproc.map((x) => x.start)).toFixed(1)} ms, ` +
      `/ restore, paired: ${median(inproc.map((x) => x.startRatio)).toFixed(2)}×`,
  );
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    rmSync(dir, { recursive: true, force: true });
  });
