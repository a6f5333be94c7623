// Issue 9, item 8: SIGTERM during start-up must not hang the agent nor leave capture rules.
// `istio-node-agent run` (certificates + capture, SIDECAR_MODE=none) against the embedded CA on
// loopback; its iptables programs run inside a test network namespace through wrappers earlier
// on PATH, and iptables-*-restore is slowed by 0.3 s (a busy host). SIGTERM at a random moment
// after the first certificate, in a loop: every run must exit 0 and leave no rule.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { certsOnlyEnv } from '../helpers/certs';
import { createNetns } from '../helpers/netns';
import { netnsPath } from '../helpers/netns-path';
import { requireRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';
import { exitWithin } from '../helpers/exit-within';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const TRIES = Number(process.env.SIGTERM_START_TRIES ?? 100);
/** Hang detector for one run's exit after SIGTERM (cleanup takes about a second). */
const EXIT_BOUND_MS = 30_000;
/** SIGTERM lands this long (at random, up to) after the first certificate. */
const SPREAD_MS = 1000;
/** Tries run by this many workers at once, each with its own namespace, state and certificates. */
const WORKERS = Number(process.env.SIGTERM_START_WORKERS ?? 4);
if (requireRoot(t, 'the SIGTERM-during-start test')) {
  t.setTimeout(Math.max(300_000, Math.ceil(TRIES / WORKERS) * 20_000));
  t.test(`SIGTERM at random moments of start-up: ${TRIES} tries`, async (t) => {
    const ca = await startDevCa({ ttlMs: 3600_000 });
    const work = tmpDir(t, 'sigterm-start-', { mode: 0o700 });
    const namespaces: ReturnType<typeof createNetns>[] = [];
    t.teardown(async () => {
      for (const ns of namespaces) ns.remove();
      await ca.stop();
    });
    let hangs = 0;
    let bad = 0;
    let left = 0;
    let duringCapture = 0;
    let next = 0;
    const worker = async (w: number): Promise<void> => {
      const ns = createNetns(`term${w}`);
      namespaces.push(ns);
      // Capture's programs run in the namespace; the restore programs after 0.3 s.
      const bin = netnsPath(path.join(work, `bin${w}`), ns, 0.3);
      const certs = path.join(work, `certs${w}`);
      mkdirSync(certs);
      const boot = await ca.issueBootstrap(ID, 3600_000);
      writeFileSync(path.join(certs, 'cert-chain.pem'), boot.certChainPem);
      writeFileSync(path.join(certs, 'key.pem'), boot.keyPem, { mode: 0o600 });
      writeFileSync(path.join(certs, 'root-cert.pem'), boot.rootPem);
      const env = {
        ...certsOnlyEnv(ca.address, certs, path.join(work, `state${w}`)),
        PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        ISTIO_CAPTURE: 'true',
        ISTIO_SERVICE_CIDR: '10.96.0.0/16',
        ISTIO_INBOUND_PORTS: '8080',
        ENVOY_USER: 'nobody',
      };
      const ours = (): string[] =>
        (ns.runSync('iptables-save', []) + ns.runSync('ip6tables-save', []))
          .split('\n')
          .filter((l) => l.includes('ISTIO'));
      for (let i = next++; i < TRIES; i = next++) {
        const child = spawn(process.execPath, [BUNDLE, 'run'], {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr.on('data', (b: Buffer) => (out += b.toString()));
        const exited = new Promise<number | null>((r) =>
          child.once('exit', (c) => {
            r(c);
          }),
        );
        for (let n = 0; n < 600 && !/CSR is approved|keeping the certificate/.test(out); n++) {
          if (child.exitCode !== null) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * SPREAD_MS)));
        if (!out.includes('capture on') && !out.includes('agent is ready')) duringCapture++;
        child.kill('SIGTERM');
        const code = await exitWithin(exited, EXIT_BOUND_MS);
        if (code === 'hung') {
          hangs++;
          child.kill('SIGKILL');
          await exited;
          t.comment(`try ${i}: hung after SIGTERM; log tail: ${out.slice(-600)}`);
        } else if (code !== 0) {
          bad++;
          t.comment(`try ${i}: exit ${code}; log tail: ${out.slice(-600)}`);
        }
        const rules = ours();
        if (rules.length > 0) {
          left++;
          t.comment(`try ${i}: rules left: ${rules.join(' | ')}`);
          ns.runSync('iptables', ['-t', 'nat', '-F']);
          ns.runSync('iptables', ['-t', 'nat', '-X']);
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    t.equal(hangs, 0, 'no run hung after SIGTERM');
    t.equal(bad, 0, 'every run exited 0');
    t.equal(left, 0, 'no run left capture rules');
    t.ok(duringCapture > 0, `some SIGTERMs landed while capture was starting (${duringCapture})`);
  });
}
