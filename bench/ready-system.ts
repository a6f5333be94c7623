// Benchmark (root): exec → first certificate and exec → READY of the daemon as it ships and runs:
// the .deb installed in a booted Debian 12 container (the system test's, scripts/system-test/),
// started by its systemd with `systemctl start`, with every component on:
//   - certificates: the first CSR against the package's own dev CA (a transient service inside),
//     identity from the bootstrap set it wrote;
//   - capture: the rules in the container's netfilter;
//   - DNS: the drop-in written and the real dnsmasq service restarted by `systemctl restart`
//     (`dns clean` before each first start, so that each one writes it again);
//   - the sidecar: the envoy TEST DOUBLE (test/doubles/fake-envoy.cjs, run by a copy of node), LIVE
//     as soon as its admin port listens (FAKE_ENVOY_INIT_MS=0: the real envoy's own time to LIVE
//     depends on Pilot and is not the agent's).
// Beside it, certificates only, and a restart with every component on whose certificate is still
// valid (no CSR, the DNS drop-in already in place). The baseline is `node -e 0` run by a copy of
// the agent's own unit (same sandbox, Type=oneshot), so that what the ratio shows is the agent.
//
// All times are systemd's: from ExecMainStartTimestampMonotonic (the fork of the main process)
// to ActiveEnterTimestampMonotonic (READY=1 processed), and to the journal's monotonic time of the
// "CSR is approved successfully" line (written after the set is on disk).
//
//   npx tsx bench/ready-system.ts [rounds=7] [--baseline-deb OTHER.deb]
//
// --baseline-deb puts the agent of another package (an earlier commit's: `DEB_COMPRESSION=gzip
// bash scripts/build-deb.sh` in a checkout of it) beside the installed one, started by the same
// unit through a drop-in that swaps ExecStart=, and runs every case with it too in each round;
// the table then gains the paired differences.
//
// Rounds interleave the cases (the order rotates). The first build of the Debian root takes
// minutes; later runs reuse it (.cache/system-test). Asserts nothing.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Container } from '../scripts/system-test/container';
import {
  bootWithPackage,
  DOUBLES,
  installDoubles,
  missingTools,
} from '../scripts/system-test/provision';
import { median, spread, table } from './report';

const { values, positionals } = parseArgs({
  options: { 'baseline-deb': { type: 'string' } },
  allowPositionals: true,
});
const rounds = Number(positionals[0] ?? 7);
const baselineDeb = values['baseline-deb'];
/** Where the baseline's agent goes inside, and the drop-in that makes the unit start it. */
const BASE_AGENT = '/usr/local/lib/bench/istio-node-agent';
const SWAP_DROPIN = `/run/systemd/system/istio-auth-node-agent.service.d/bench-baseline.conf`;
const UNIT = 'istio-auth-node-agent.service';
const BASE_UNIT = 'bench-node-e0.service';
const CLUSTER_ENV = '/var/lib/istio/envoy/cluster.env';
const IDENTITY = 'spiffe://cluster.local/ns/default/sa/vm';
const workParent = path.resolve(__dirname, '..', '.cache', 'system-test');

type Alg = 'RSA' | 'ECDSA';

interface Case {
  readonly name: string;
  /** The baseline package's agent instead of the installed one. */
  readonly baseline: boolean;
  readonly alg: Alg;
  /** Every component, or certificates only. */
  readonly all: boolean;
  /** Start from the bootstrap set and no DNS drop-in (a first start), or as the last run left it. */
  readonly fresh: boolean;
}

interface Sample {
  readonly cert: number;
  readonly ready: number;
  readonly node: number;
}

function variables(c: Case): string[] {
  const env = [
    'CITADEL_ADDRESS=127.0.0.1:8060',
    'CITADEL_ENV=onprem',
    `WORKLOAD_KEY_ALGORITHM=${c.alg}`,
    // No spreading of the first CSR: what is measured is the path itself.
    'CERT_FIRST_CSR_JITTER=0',
  ];
  if (!c.all) return [...env, 'SIDECAR_MODE=none', 'ISTIO_CAPTURE=false'];
  return [
    ...env,
    'ISTIO_SERVICE_CIDR=10.96.0.0/12',
    'ISTIO_INBOUND_PORTS=8080',
    // TEST-NET-2: dnsmasq answers with them; nothing is sent to them.
    'ISTIO_PILOT_IP=198.51.100.7',
    'ISTIO_CITADEL_IP=198.51.100.9',
    'ISTIO_MIXER_IP=198.51.100.10',
    'SIDECAR_MODE=envoy',
    `ISTIO_BIN_BASE=${DOUBLES}/bin`,
    'ISTIO_SVC_IP=192.0.2.10',
    'ISTIO_PROXY_DRAIN_SECONDS=1',
  ];
}

/** exec → exit of `node -e 0` in a copy of the agent's unit, in ms. */
async function bareNode(c: Container): Promise<number> {
  await c.must(`systemctl start ${BASE_UNIT}`);
  const p = await c.show(
    BASE_UNIT,
    'ExecMainStartTimestampMonotonic',
    'ExecMainExitTimestampMonotonic',
  );
  await c.must(`systemctl stop ${BASE_UNIT}`);
  return (
    (Number(p.ExecMainExitTimestampMonotonic) - Number(p.ExecMainStartTimestampMonotonic)) / 1000
  );
}

/** Which agent the unit starts: the installed one, or the baseline's. */
async function useAgent(c: Container, baseline: boolean): Promise<void> {
  const on = (await c.sh(`test -e ${SWAP_DROPIN}`)).code === 0;
  if (on === baseline) return;
  await c.must(
    baseline
      ? `mkdir -p ${path.dirname(SWAP_DROPIN)} && printf '[Service]\nExecStart=\nExecStart=${BASE_AGENT} run\n' > ${SWAP_DROPIN} && systemctl daemon-reload`
      : `rm -f ${SWAP_DROPIN} && systemctl daemon-reload`,
  );
}

async function once(c: Container, k: Case, baseEnv: string): Promise<Omit<Sample, 'node'>> {
  await c.must(`systemctl stop ${UNIT}`);
  await useAgent(c, k.baseline);
  if (k.fresh)
    await c.must(
      'istio-node-agent dns clean >/dev/null && rm -rf /etc/certs && cp -a /tmp/systest/certs-bootstrap /etc/certs',
    );
  // Through /proc/<leader>/root: the file keeps its owner and mode (root's, 0644).
  writeFileSync(c.hostPath(CLUSTER_ENV), `${baseEnv}${variables(k).join('\n')}\n`);
  const r = await c.sh(`systemctl start ${UNIT}`, { timeoutMs: 120_000 });
  if (r.code !== 0) {
    const log = await c.sh(`journalctl -u ${UNIT} -n 30 --no-pager`);
    throw new Error(`${k.name}: systemctl start exited ${r.code}: ${r.stderr}\n${log.stdout}`);
  }
  const p = await c.show(
    UNIT,
    'MainPID',
    'ExecMainStartTimestampMonotonic',
    'ActiveEnterTimestampMonotonic',
  );
  const exec = Number(p.ExecMainStartTimestampMonotonic);
  const ready = (Number(p.ActiveEnterTimestampMonotonic) - exec) / 1000;
  let cert = NaN;
  if (k.fresh) {
    const lines = await c.must(
      `journalctl -o json --output-fields=MESSAGE _PID=${p.MainPID} --no-pager`,
    );
    const rec = lines
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { MESSAGE: string; __MONOTONIC_TIMESTAMP: string })
      .find((x) => x.MESSAGE.includes('CSR is approved successfully'));
    if (!rec) throw new Error(`${k.name}: no "CSR is approved" line from PID ${p.MainPID}`);
    cert = (Number(rec.__MONOTONIC_TIMESTAMP) - exec) / 1000;
  }
  return { cert, ready };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('bench/ready-system.ts: skipped, needs root (a booted container)');
    return;
  }
  const missing = missingTools();
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}`);
  const c = await bootWithPackage(workParent, `ina-bench-${process.pid}`, (l) => {
    console.error(l);
  });
  try {
    await installDoubles(c);
    // LIVE as soon as the admin port listens: the agent's part of the sidecar start, not envoy's.
    await c.must(`sed -i 's|^exec |export FAKE_ENVOY_INIT_MS=0\\nexec |' ${DOUBLES}/bin/envoy`);
    await c.must('dpkg -i /tmp/systest/agent.deb >/dev/null 2>&1');
    if (baselineDeb !== undefined) {
      // The baseline's executable alone, root's and 0755 like the installed one.
      const r = spawnSync(
        'sh',
        [
          '-c',
          'dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/bin/istio-node-agent',
          'sh',
          baselineDeb,
        ],
        { maxBuffer: 1 << 30 },
      );
      if (r.status !== 0)
        throw new Error(`cannot read the agent from ${baselineDeb}: ${String(r.stderr)}`);
      await c.must(`mkdir -p ${path.dirname(BASE_AGENT)}`);
      writeFileSync(c.hostPath(BASE_AGENT), r.stdout, { mode: 0o755 });
    }
    await c.must(
      `systemd-run --unit=bench-ca.service --quiet /usr/bin/istio-node-agent dev-ca --listen 127.0.0.1:8060 --state-dir /tmp/systest/ca --bootstrap-identity ${IDENTITY} --bootstrap-dir /etc/certs`,
    );
    await c.must(
      'for i in $(seq 300); do test -s /etc/certs/cert-chain.pem && exit 0; sleep 0.1; done; exit 1',
    );
    await c.must('cp -a /etc/certs /tmp/systest/certs-bootstrap');
    // The baseline: the agent's unit, running `node -e 0` once.
    await c.must(
      `sed -e 's|^ExecStart=.*|ExecStart=${DOUBLES}/node -e 0|' -e 's|^Type=.*|Type=oneshot\\nRemainAfterExit=yes|' -e '/^WatchdogSec=/d' -e '/^Restart=/d' -e '/^ExecReload=/d' /lib/systemd/system/${UNIT} > /run/systemd/system/${BASE_UNIT} && systemctl daemon-reload`,
    );
    const baseEnv = await c.must(`cat ${CLUSTER_ENV}`);
    const agents = baselineDeb === undefined ? [false] : [false, true];
    const cases: Case[] = agents.flatMap((baseline) =>
      (['RSA', 'ECDSA'] as const).flatMap((alg) => [
        { name: 'every component, first start', baseline, alg, all: true, fresh: true },
        { name: 'certificates only, first start', baseline, alg, all: false, fresh: true },
      ]),
    );
    const restart = (k: Case): Case => ({
      ...k,
      name: 'every component, restart (valid cert)',
      fresh: false,
    });
    const load0 = loadavg()[0]!;
    const res = new Map<string, Sample[]>();
    const label = (k: Case): string => `${k.baseline ? 'baseline: ' : ''}${k.name}\t${k.alg}`;
    const add = (k: Case, s: Sample): void => {
      const key = label(k);
      res.set(key, [...(res.get(key) ?? []), s]);
    };
    for (let i = 0; i < rounds; i++) {
      const node = await bareNode(c);
      for (let j = 0; j < cases.length; j++) {
        const k = cases[(i + j) % cases.length]!;
        add(k, { ...(await once(c, k, baseEnv)), node });
        // Right after a first start with every component: the same again, now a restart.
        if (k.all) add(restart(k), { ...(await once(c, restart(k), baseEnv)), node });
      }
    }
    await c.sh(`systemctl stop ${UNIT}`);
    const nodes = [...res.values()][0]!.map((s) => s.node);
    console.log(
      `exec → first certificate and exec → READY under systemd in a booted Debian 12 container, ${rounds} interleaved rounds; ` +
        `node -e 0 in the same unit: ${spread(nodes)} ms; load average ${load0.toFixed(1)} at the start, ` +
        `${loadavg()[0]!.toFixed(1)} at the end (2 cores)`,
    );
    const rows = [...res].map(([key, ss]) => {
      const [name, alg] = key.split('\t') as [string, string];
      const certs = ss.map((s) => s.cert).filter((x) => !Number.isNaN(x));
      return [
        name,
        alg,
        certs.length ? spread(certs) : '(none asked)',
        spread(ss.map((s) => s.ready)),
        median(ss.map((s) => s.ready / s.node)).toFixed(2),
      ];
    });
    console.log(
      table(
        ['case', 'alg', 'cert ms median (min–max)', 'READY ms median (min–max)', 'READY × node'],
        rows,
        2,
      ),
    );
    if (baselineDeb !== undefined) {
      console.log(`baseline: the agent of ${baselineDeb}; paired per round, this − baseline:`);
      for (const [key, ss] of res) {
        if (key.startsWith('baseline: ')) continue;
        const b = res.get(`baseline: ${key}`)!;
        const d = (f: (s: Sample) => number): string => {
          const x = median(ss.map((s, i) => f(s) - f(b[i]!)));
          return Number.isNaN(x) ? '–' : `${x >= 0 ? '+' : ''}${x.toFixed(0)} ms`;
        };
        console.log(
          `  ${key.replace('\t', ' ')}: cert ${d((s) => s.cert)}, READY ${d((s) => s.ready)}`,
        );
      }
    }
  } finally {
    await c.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
