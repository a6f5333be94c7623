// Benchmark (root): exec → READY of the daemon beside exec → its first certificate set, with
// certificates only and with certificates + traffic capture, against `node -e 0`, in one run.
// Everything runs inside a fresh network namespace (the bench re-runs itself under `ip netns
// exec`): the CA process on its loopback, the agent's rules in its tables. DNS is off (it needs
// the cluster's addresses and a dnsmasq) and so is the sidecar (SIDECAR_MODE=none): what is
// measured is whether capture, now started beside the certificate request (src/start-waves.ts),
// still sits on the path to READY.
//
//   npm run build && npx tsx bench/ready-start.ts [rounds=9] [--baseline OTHER_BUNDLE]
//
// --baseline adds another bundle (e.g. an earlier commit's, built with `node scripts/build.mjs
// --outfile /tmp/base/istio-node-agent.cjs` in a checkout of it) to every round, and prints the
// bundle against it paired per round.
//
// Rounds are interleaved (each variant once per round, the order rotating). "READY − cert" is
// the median over rounds of the time from the set written to READY in the same run. Asserts
// nothing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import { certsOnlyEnv } from '../test/helpers/certs';
import { BUNDLE, freshCertsDir, startCaProcess, type CaProcess } from './ca-process';
import { median, spread, table } from './report';

const { values, positionals } = parseArgs({
  options: { baseline: { type: 'string' } },
  allowPositionals: true,
});
const rounds = Number(positionals[0] ?? 9);
const baseline = values.baseline === undefined ? undefined : path.resolve(values.baseline);

interface Variant {
  readonly name: string;
  readonly env: Record<string, string>;
}

const VARIANTS: readonly Variant[] = [
  { name: 'certs only', env: {} },
  {
    name: 'certs + capture',
    env: {
      ISTIO_CAPTURE: 'true',
      ISTIO_SERVICE_CIDR: '10.96.0.0/16,10.100.0.0/16',
      ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.5.0/24',
      ISTIO_INBOUND_PORTS: '8080,9090',
      ENVOY_USER: 'nobody',
    },
  },
];

interface Times {
  cert: number;
  ready: number;
}

async function once(v: Variant, ca: CaProcess, alg: string, bundle: string): Promise<Times> {
  const certs = freshCertsDir(ca);
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, [bundle, 'run'], {
    env: { ...certsOnlyEnv(ca.address, certs.dir, certs.state, alg), ...v.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    return await new Promise<Times>((resolve, reject) => {
      let cert = NaN;
      child.once('exit', (code) => {
        reject(new Error(`${v.name}: exited with ${String(code)} before READY`));
      });
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('CSR is approved successfully')) cert = performance.now() - t0;
        if (line.includes('agent is ready')) resolve({ cert, ready: performance.now() - t0 });
      });
    });
  } finally {
    child.removeAllListeners('exit');
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    certs.remove();
  }
}

function bareNode(): number {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  return performance.now() - t0;
}

async function inner(): Promise<void> {
  spawnSync('ip', ['link', 'set', 'lo', 'up']);
  const load0 = loadavg()[0]!;
  const ca = await startCaProcess({ alg: 'ECDSA', ttl: '1h' });
  const bundles: [string, string][] = [
    ['', BUNDLE],
    ...(baseline ? [['baseline: ', baseline] as [string, string]] : []),
  ];
  const cases = VARIANTS.flatMap((v) =>
    ['RSA', 'ECDSA'].flatMap((alg) =>
      bundles.map(([label, bundle]) => ({ v, alg, label, bundle })),
    ),
  );
  const res = new Map<string, (Times & { node: number })[]>();
  try {
    for (let i = 0; i < rounds; i++) {
      const node = bareNode();
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(i + k) % cases.length]!;
        const key = `${c.label}${c.v.name}\t${c.alg}`;
        const r = await once(c.v, ca, c.alg, c.bundle);
        res.set(key, [...(res.get(key) ?? []), { ...r, node }]);
      }
    }
  } finally {
    await ca.stop();
  }
  console.log(
    `exec → first set written and exec → READY: ${rounds} interleaved rounds in a network namespace; ` +
      `load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (2 cores)`,
  );
  const rows = [...res].map(([key, rs]) => {
    const [name, alg] = key.split('\t') as [string, string];
    return [
      name,
      alg,
      spread(rs.map((r) => r.cert)),
      spread(rs.map((r) => r.ready)),
      median(rs.map((r) => r.ready - r.cert)).toFixed(0),
      median(rs.map((r) => r.ready / r.node)).toFixed(2),
    ];
  });
  console.log(
    table(
      [
        'variant',
        'alg',
        'cert ms median (min–max)',
        'READY ms median (min–max)',
        'READY − cert',
        'READY × node',
      ],
      rows,
    ),
  );
  if (baseline) {
    for (const v of VARIANTS)
      for (const alg of ['RSA', 'ECDSA']) {
        const a = res.get(`${v.name}\t${alg}`)!;
        const b = res.get(`baseline: ${v.name}\t${alg}`)!;
        const d = (k: keyof Times): string => {
          const x = median(a.map((r, i) => r[k] - b[i]![k]));
          return `${x >= 0 ? '+' : ''}${x.toFixed(0)} ms`;
        };
        console.log(
          `${v.name} ${alg}, bundle − baseline paired: cert ${d('cert')}, READY ${d('ready')}`,
        );
      }
  }
}

async function outer(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('bench/ready-start.ts: skipped, needs root (network namespaces, iptables)');
    return;
  }
  const ns = `ready-bench-${randomBytes(3).toString('hex')}`;
  spawnSync('ip', ['netns', 'add', ns]);
  try {
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '--import',
        'tsx',
        __filename,
        String(rounds),
        ...(baseline ? ['--baseline', baseline] : []),
      ],
      { stdio: 'inherit', env: { ...process.env, READY_BENCH_INNER: '1' } },
    );
    if (r.status !== 0) process.exitCode = 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

(process.env.READY_BENCH_INNER === '1' ? inner() : outer()).catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
