// Issue 9, item 5 through the real CLI: `istio-node-agent run` with capture on and
// SIDECAR_MODE=envoy but no envoy binary exits 78 before it sends a CSR or applies a rule. (The
// agent runs on the host's network and reaches the embedded CA on loopback; its iptables
// programs run in a test namespace through PATH wrappers. DNS is off here because the real `run`
// manages this machine's /etc; start-undo.test.ts covers DNS on a temporary root.)
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { normaliseSave } from '../../src/netfilter/live';
import { bootstrapDir, certsOnlyEnv } from '../helpers/certs';
import { snapshot } from '../helpers/dns-root';
import { createNetns } from '../helpers/netns';
import { netnsPath } from '../helpers/netns-path';
import { requireRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

if (requireRoot(t, 'the run preflight test')) {
  t.test('run: SIDECAR_MODE=envoy without envoy exits 78 with the host untouched', async (t) => {
    const ca = await startDevCa({ ttlMs: 3600_000 });
    const work = tmpDir(t, 'run-preflight-', { mode: 0o700 });
    const ns = createNetns('pre');
    t.teardown(async () => {
      ns.remove();
      await ca.stop();
    });
    const certs = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
    const emptyBin = path.join(work, 'no-envoy');
    mkdirSync(emptyBin);
    const state = path.join(work, 'state');
    const env = {
      ...certsOnlyEnv(ca.address, certs, state),
      PATH: `${netnsPath(path.join(work, 'bin'), ns)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      ISTIO_CAPTURE: 'true',
      ISTIO_SERVICE_CIDR: '10.96.0.0/16',
      ENVOY_USER: 'nobody',
      EXEC_USER: 'nobody',
      SIDECAR_MODE: 'envoy',
      ISTIO_BIN_BASE: emptyBin,
    };
    const save = (): string =>
      normaliseSave(ns.runSync('iptables-save', []) + ns.runSync('ip6tables-save', []));
    const rulesBefore = save();
    const certsBefore = snapshot(path.dirname(certs));
    const calls = ca.calls.length;
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [BUNDLE, 'run'], { env, timeout: 120_000 }, (err, so, se) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: so + se });
      });
    });
    t.equal(r.code, 78, 'exit 78');
    t.match(r.out, 'AGENT_E_SIDECAR_BINARY', 'names the missing binary');
    t.notMatch(r.out, /capture on|CSR is approved/, 'neither capture nor a CSR was started');
    t.equal(ca.calls.length, calls, 'the CA saw no CSR');
    t.same(snapshot(path.dirname(certs)), certsBefore, 'CERTS_DIR untouched');
    t.equal(save(), rulesBefore, 'no rule was applied');
    t.notOk(existsSync(path.join(state, 'capture.json')), 'no capture record');
  });
}
