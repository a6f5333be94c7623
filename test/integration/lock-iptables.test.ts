// One lock in the state directory (issue 9, item 9): two `iptables apply` at once are
// serialised; before the lock they duplicated the jump rules (12 of 20 tries in the issue).
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createNetns, type Netns } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');
const TRIES = 20;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function agentIn(ns: Netns, env: Record<string, string>, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns.name, process.execPath, BUNDLE, ...args],
      { env: { PATH: process.env.PATH, HOME: '/tmp', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

if (requireRoot(t, 'the concurrent iptables apply test')) {
  t.test(`two iptables apply at once never duplicate rules (${TRIES} tries)`, async (t) => {
    const dir = tmpDir(t, 'lock-nf-', { mode: 0o700 });
    chmodSync(dir, 0o755);
    const ns = createNetns('lock');
    t.teardown(() => {
      ns.remove();
    });
    const clusterEnv = path.join(dir, 'cluster.env');
    writeFileSync(
      clusterEnv,
      'ISTIO_SERVICE_CIDR=10.96.0.0/16\nISTIO_INBOUND_PORTS=8080\nENVOY_USER=nobody\n',
    );
    const env = {
      ISTIO_CLUSTER_CONFIG: clusterEnv,
      ISTIO_SIDECAR_CONFIG: '/dev/null',
      ISTIO_AGENT_STATE_DIR: path.join(dir, 'state'),
    };
    const jumps = (): string[] =>
      ns
        .runSync('iptables-save', [])
        .split('\n')
        .filter((l) => /^-A (OUTPUT|PREROUTING) .*-j ISTIO_/.test(l));
    let duplicated = 0;
    let failed = 0;
    for (let i = 0; i < TRIES; i++) {
      const runs = await Promise.all([
        agentIn(ns, env, ['iptables', 'apply']),
        agentIn(ns, env, ['iptables', 'apply']),
      ]);
      failed += runs.filter((r) => r.code !== 0).length;
      const j = jumps();
      if (j.length !== new Set(j).size || j.length !== 2) {
        duplicated++;
        t.comment(`try ${i}: jump rules ${JSON.stringify(j)}`);
      }
      // Start the next try from a host without our rules (faster than `iptables clean`).
      for (const table of ['nat', 'mangle']) {
        ns.runSync('iptables', ['-t', table, '-F']);
        ns.runSync('iptables', ['-t', table, '-X']);
      }
      rmSync(env.ISTIO_AGENT_STATE_DIR, { recursive: true, force: true });
    }
    t.equal(failed, 0, 'every apply exits 0 (the second waits for the first)');
    t.equal(duplicated, 0, 'no try ends with duplicated or missing jump rules');
  });
}
