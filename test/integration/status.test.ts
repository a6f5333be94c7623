// `istio-node-agent status` against real daemons (the bundle: `npm run build` first): a running
// one (asked over its monitoring endpoint), one whose reload was refused, one killed with
// `kill -9`; and status files judged at the time of reading (a certificate expired since).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { acquireLock, AGENT_LOCK } from '../../src/lib/lock';
import { statusFilePath, writeStatusFile } from '../../src/observe/index';
import { certsOnlyEnv } from '../helpers/certs';
import { tmpDir } from '../helpers/tmp';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

function status(args: string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH }) {
  const r = spawnSync(process.execPath, [BUNDLE, 'status', ...args], {
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

void t.test('a running agent, a refused reload, then kill -9', async (t) => {
  const ca = await startDevCa({ ttlMs: 3600_000 });
  t.teardown(() => ca.stop());
  const boot = await ca.issueBootstrap(ID, 3600_000);
  const certs = tmpDir(t, 'status-certs');
  writeFileSync(path.join(certs, 'cert-chain.pem'), boot.certChainPem);
  writeFileSync(path.join(certs, 'key.pem'), boot.keyPem, { mode: 0o600 });
  writeFileSync(path.join(certs, 'root-cert.pem'), boot.rootPem);
  const state = tmpDir(t, 'status-state');
  const etc = tmpDir(t, 'status-etc');
  const clusterEnv = path.join(etc, 'cluster.env');
  writeFileSync(clusterEnv, 'ISTIO_AGENT_LOG_LEVEL=info\n');
  const env = {
    ...certsOnlyEnv(ca.address, certs, state),
    ISTIO_CLUSTER_CONFIG: clusterEnv,
    ISTIO_AGENT_MONITORING_ADDR: '127.0.0.1:0',
  };
  const child = spawn(process.execPath, [BUNDLE, 'run'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  for (let i = 0; i < 600 && !out.includes('agent is ready'); i++) await sleep(50);
  t.match(out, 'agent is ready', 'the agent started');

  const ok = status(['--state-dir', state]);
  t.equal(ok.code, 0, 'ready: exit 0');
  t.match(ok.out, /^state: ready \(pid \d+, up \d+s, http:\/\/127\.0\.0\.1:\d+\)$/m);
  t.match(ok.out, /^ok {3}certs: cert valid until \S+Z \(in \d+m\d+s\), renewal at \S+ \(in /m);
  t.notMatch(ok.out, /^note:/m, 'asked over the endpoint');
  const json = JSON.parse(status(['--state-dir', state, '--json']).out) as {
    state: string;
    ready: boolean;
    pid: number;
    daemon: { monitoring: string };
  };
  t.equal(json.state, 'ready');
  t.equal(json.pid, child.pid);
  const live = (await (
    await fetch(`http://${json.daemon.monitoring}/debug/status`)
  ).json()) as typeof json;
  t.same(Object.keys(live).sort(), Object.keys(json).sort(), 'the same JSON as /debug/status');
  t.equal(
    status([], { PATH: process.env.PATH, ISTIO_AGENT_STATE_DIR: state }).code,
    0,
    'the state directory from the environment',
  );

  // A bad value: SIGHUP refuses it, the running configuration stays, status says so.
  writeFileSync(clusterEnv, 'ISTIO_AGENT_LOG_LEVEL=loud\n');
  child.kill('SIGHUP');
  for (let i = 0; i < 200 && !out.includes('reload refused'); i++) await sleep(50);
  await sleep(200);
  const refused = status(['--state-dir', state]);
  t.equal(refused.code, 1, 'a refused reload: exit 1');
  t.match(refused.out, /^state: degraded /m);
  t.match(
    refused.out,
    /^FAIL reload: refused \S+ \(\d+s ago\): .*cluster\.env:1: ISTIO_AGENT_LOG_LEVEL: .*\[AGENT_E_CONFIG_VALUE\]$/m,
  );
  const ready = await fetch(`http://${json.daemon.monitoring}/healthz/ready`);
  t.equal(ready.status, 503, '/healthz/ready says 503 too');
  t.match(((await ready.json()) as { notReady: Record<string, string> }).notReady.reload, /loud/);
  // status itself needs only the state directory: the bad file does not make it exit 78.
  const withBadFile = status([], { PATH: process.env.PATH, ...env });
  t.equal(withBadFile.code, 1, 'status with the bad file in its environment: 1, not 78');
  t.match(withBadFile.out, /FAIL reload/);

  // kill -9: the kernel drops the lock; status says not running, exit 3, and the last status.
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const dead = status(['--state-dir', state]);
  t.equal(dead.code, 3, 'not running: exit 3, as systemctl status');
  t.match(dead.out, /^state: not running \(no agent holds .*agent\.lock\)$/m);
  t.match(dead.out, new RegExp(`^last status: degraded, pid ${child.pid}, written `, 'm'));
  const deadJson = JSON.parse(status(['--state-dir', state, '--json']).out) as {
    state: string;
    last: { pid: number };
  };
  t.equal(deadJson.state, 'not running');
  t.equal(deadJson.last.pid, child.pid);
});

void t.test('a status file is judged when it is read: an expired certificate', async (t) => {
  const state = tmpDir(t, 'status-expired');
  const hour = 3600_000;
  const past = new Date(Date.now() - hour).toISOString();
  const file = statusFilePath(state);
  // What a daemon wrote while its certificate was valid; monitoring off, so it is read as is.
  const written = {
    state: 'ready',
    ready: true,
    notReady: {},
    pid: process.pid,
    since: new Date(Date.now() - 3 * hour).toISOString(),
    at: new Date(Date.now() - 2 * hour).toISOString(),
    summary: `cert valid until ${past}`,
    components: {
      certs: { ready: true, summary: `cert valid until ${past}`, validUntil: past },
    },
    daemon: { monitoring: null },
  };
  await writeStatusFile(file, written);

  // Killed long ago: not running, and the certificate shown as expired now.
  const dead = status(['--state-dir', state]);
  t.equal(dead.code, 3);
  t.match(dead.out, /^last status: ready, pid \d+, written /m);
  t.match(dead.out, /^ok {3}certs: cert valid until \S+ \(1h0m ago\)$/m);

  // Still running (this process holds the lock) without an endpoint: judged now, not ready.
  const lock = await acquireLock(state, AGENT_LOCK, { holder: 'status test' });
  t.teardown(() => lock.release());
  const alive = status(['--state-dir', state]);
  t.equal(alive.code, 1, 'an expired certificate: not ready, exit 1');
  t.match(alive.out, /^state: degraded \(pid \d+/m);
  t.match(alive.out, /^note: the monitoring endpoint is off .*judged now$/m);
  t.match(
    alive.out,
    /^FAIL certs: cert valid until \S+ \(1h0m ago\) \(expired at \S+ \(1h0m ago\)\)$/m,
  );
  const json = JSON.parse(status(['--state-dir', state, '--json']).out) as {
    state: string;
    notReady: Record<string, string>;
  };
  t.equal(json.state, 'degraded');
  t.match(json.notReady.certs, /^expired at /);
});

void t.test('no agent ever ran here: not running, exit 3', async (t) => {
  const state = tmpDir(t, 'status-none');
  const r = status(['--state-dir', state]);
  t.equal(r.code, 3);
  t.match(r.out, /^state: not running/m);
  t.match(r.out, /the agent has not run with this state directory/);
});
