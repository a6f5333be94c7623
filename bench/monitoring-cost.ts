// Benchmark: what the monitoring endpoint costs. The agent (the bundle, certificates only) with
// ISTIO_AGENT_MONITORING_ADDR=off and with the endpoint on (a free loopback port), side by side
// in interleaved rounds against one dev CA in its own process: exec → first certificate set
// written ("CSR is approved"), then the idle daemon's resident memory two seconds later (by then
// the endpoint variant has loaded prom-client, which it does once the first certificate is on
// disk), and after one /metrics scrape. Ratios are the median over rounds of (on / off of the
// same round); a bare idle `node` is measured in the same rounds for scale. Asserts nothing.
//
//   npm run build && npx tsx bench/monitoring-cost.ts [rounds=9]
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import * as readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { certsOnlyEnv } from '../test/helpers/certs';
import { BUNDLE, freshCertsDir, rssKb, startCaProcess, stop } from './ca-process';
import { median, spread, table } from './report';

const rounds = Number(process.argv[2] ?? 9);
const SETTLE_MS = 2000;

type Mode = 'off' | 'on';
interface Sample {
  firstCertMs: number;
  idleRssKb: number;
  scrapedRssKb?: number;
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve(body);
      });
    })
      .on('error', reject)
      .end();
  });
}

async function one(mode: Mode, caAddress: string, fresh: () => ReturnType<typeof freshCertsDir>) {
  const certs = fresh();
  const env = {
    ...certsOnlyEnv(caAddress, certs.dir, certs.state, 'ECDSA'),
    ISTIO_AGENT_MONITORING_ADDR: mode === 'on' ? '127.0.0.1:0' : 'off',
  };
  const t0 = performance.now();
  const child = spawn(process.execPath, [BUNDLE, 'run'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let address: string | undefined;
    const firstCertMs = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => {
        reject(new Error(`the agent exited with ${code}`));
      });
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const rec = JSON.parse(line) as { msg?: string; address?: string };
        if (rec.msg?.startsWith('monitoring on ')) address = rec.address;
        if (rec.msg?.startsWith('CSR is approved')) resolve(performance.now() - t0);
      });
    });
    await sleep(SETTLE_MS);
    const s: Sample = { firstCertMs, idleRssKb: rssKb(child.pid!) };
    if (address) {
      const text = await get(`http://${address}/metrics`);
      if (!text.includes('istio_node_agent_cert_expiry_timestamp_seconds'))
        throw new Error('/metrics without the certificate expiry');
      s.scrapedRssKb = rssKb(child.pid!);
    }
    return s;
  } finally {
    await stop(child);
    certs.remove();
  }
}

async function bareNodeRssKb(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
    stdio: 'ignore',
  });
  await sleep(SETTLE_MS);
  const kb = rssKb(child.pid!);
  await stop(child);
  return kb;
}

async function main(): Promise<void> {
  const ca = await startCaProcess({ alg: 'ECDSA' });
  const got: Record<Mode, Sample[]> = { off: [], on: [] };
  const bare: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const order: Mode[] = i % 2 ? ['on', 'off'] : ['off', 'on'];
      for (const m of order) got[m].push(await one(m, ca.address, () => freshCertsDir(ca)));
      bare.push(await bareNodeRssKb());
    }
  } finally {
    await ca.stop();
  }
  const ratio = (f: (s: Sample) => number | undefined): string =>
    median(got.on.map((s, i) => f(s)! / f(got.off[i]!)!)).toFixed(3);
  const mb = (kb: number): string => (kb / 1024).toFixed(1);
  const rows = [
    [
      'exec → first certificate (ms)',
      spread(got.off.map((s) => s.firstCertMs)),
      spread(got.on.map((s) => s.firstCertMs)),
      ratio((s) => s.firstCertMs),
    ],
    [
      `idle RSS ${SETTLE_MS / 1000}s after (MB)`,
      mb(median(got.off.map((s) => s.idleRssKb))),
      mb(median(got.on.map((s) => s.idleRssKb))),
      ratio((s) => s.idleRssKb),
    ],
    [
      'idle RSS after one /metrics (MB)',
      mb(median(got.off.map((s) => s.idleRssKb))),
      mb(median(got.on.map((s) => s.scrapedRssKb!))),
      median(got.on.map((s, i) => s.scrapedRssKb! / got.off[i]!.idleRssKb)).toFixed(3),
    ],
  ];
  console.log(
    `monitoring endpoint cost, ${rounds} interleaved rounds (median, [min–max]); bare idle node ${mb(median(bare))} MB\n`,
  );
  console.log(table(['', 'off', 'on (127.0.0.1:0)', 'on / off'], rows));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
