// The monitoring endpoint of a real agent in this process: certificates from the dev CA over
// gRPC/TLS on loopback, envoy run as a child (the test double in test/doubles), /metrics and
// /healthz scraped over HTTP while the CA is down before the first certificate, comes back,
// certificates rotate, and envoy is killed. The values must move.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '../../src/agent';
import { startDevCa, type DevCa } from '../../src/ca/index';
import { buildCertManager } from '../../src/certs/index';
import { Monitoring } from '../../src/daemon/index';
import { systemClock } from '../../src/lib/clock';
import { createSidecar } from '../../src/sidecar/index';
import { createNotifier } from '../../src/systemd/index';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';
import {
  binBase,
  CHILD_USER,
  freePort,
  isRoot,
  killRecorded,
  openTapProcessInfo,
  waitFor,
} from '../helpers/sidecar';
import { tmpDir } from '../helpers/tmp';

openTapProcessInfo();
const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const TTL_MS = 60_000;

async function get(url: string): Promise<{ status: number; body: string; type: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
}

/** The value of one series in an exposition, e.g. `csr_total{result="issued",code=""}`. */
function value(text: string, series: string): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`istio_node_agent_${series} `) || l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

void t.test(
  'metrics move through a CA outage before the first certificate, rotations and an envoy crash',
  async (t) => {
    const runAs = isRoot ? CHILD_USER : os.userInfo().username;
    const certs = tmpDir(t, 'mon-certs');
    const state = tmpDir(t, 'mon-state');
    const envoyState = tmpDir(t, 'mon-envoy', { mode: 0o1777 });
    const rec = tmpDir(t, 'mon-rec', { mode: 0o1777 });
    const cfgDir = tmpDir(t, 'mon-cfg');
    const bin = binBase(t, ['envoy']);
    t.teardown(() => {
      killRecorded(rec);
    });

    // The CA makes the bootstrap set, then goes away: the agent starts without it.
    let ca: DevCa = await startDevCa({ ttlMs: TTL_MS });
    const { port } = new URL(`http://${ca.address}`);
    const root = { certPem: ca.rootPem, keyPem: ca.rootKeyPem };
    const boot = await ca.issueBootstrap(ID, 3600_000);
    writeFileSync(path.join(certs, 'cert-chain.pem'), boot.certChainPem);
    writeFileSync(path.join(certs, 'key.pem'), boot.keyPem, { mode: 0o600 });
    writeFileSync(path.join(certs, 'root-cert.pem'), boot.rootPem);
    await ca.stop();
    t.teardown(() => ca.stop());

    const config = testConfig({
      CITADEL_ADDRESS: ca.address,
      CERTS_DIR: certs,
      WORKLOAD_CERT_TTL: '60s',
      // Renewal at ~6 s: rotations within the test.
      CERT_RENEW_RATIO: '0.1',
      CERT_FIRST_CSR_JITTER: '0',
      ISTIO_AGENT_STATE_DIR: state,
      ISTIO_CAPTURE: 'false',
      SIDECAR_MODE: 'envoy',
      ISTIO_BIN_BASE: bin,
      ISTIO_PROXY_CONFIG_DIR: cfgDir,
      ISTIO_PROXY_ADMIN_PORT: String(await freePort()),
      ISTIO_PROXY_DRAIN_SECONDS: '1',
      ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS: '1',
      PILOT_ADDRESS: 'istio-pilot.istio-system:15011',
      EXEC_USER: runAs,
      ENVOY_USER: runAs,
      ISTIO_SVC_IP: '10.0.0.5',
      POD_NAME: 'vm-1',
    });
    const base = testDeps({ level: 'info' });
    const mon = new Monitoring(base.log);
    const deps = { ...base, metrics: mon.store };
    const certMgr = await buildCertManager(config, deps, { keyOwner: 'none' });
    const sidecar = createSidecar(config, deps, {
      processEnv: {
        PATH: process.env.PATH,
        FAKE_ENVOY_STATE_DIR: envoyState,
        FAKE_ENVOY_RECORD_DIR: rec,
      },
    });
    const agent = new Agent(config, [certMgr, sidecar], {
      log: base.log,
      clock: systemClock,
      notifier: createNotifier({}, base.log),
      statusFile: undefined,
    });
    await mon.listen({ host: '127.0.0.1', port: 0 }, agent);
    t.teardown(() => mon.close());
    const url = `http://${mon.address!}`;
    const metrics = async (): Promise<string> => (await get(`${url}/metrics`)).body;

    const started = agent.start();
    t.teardown(async () => {
      await agent.stop();
    });
    t.equal((await get(`${url}/healthz/live`)).status, 200, 'live while starting');
    let text = '';
    const caError = 'csr_total{result="ca_error",code="AGENT_E_CA_UNAVAILABLE"}';
    for (let i = 0; i < 300 && !(value(text, caError)! >= 1); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = await metrics();
    }
    t.ok(value(text, caError)! >= 1, 'the CA being away is counted by its code');
    t.match(text, /istio_node_agent_build_info\{version="[^"]+",node_version="v\d+/);
    const ready = await get(`${url}/healthz/ready`);
    t.equal(ready.status, 503, '/healthz/ready: 503 before the first certificate');
    const body = JSON.parse(ready.body) as { ready: boolean; notReady: Record<string, string> };
    t.equal(body.ready, false);
    t.match(body.notReady.certs, /AGENT_E_CA_UNAVAILABLE/, 'the body names certs and why');

    // The CA comes back on the same address with the same root.
    ca = await startDevCa({ ttlMs: TTL_MS, port: Number(port), root });
    await started;
    await waitFor('ready', () => agent.status().ready, { timeoutMs: 60_000 });
    t.equal((await get(`${url}/healthz/ready`)).status, 200, '/healthz/ready: 200 once ready');
    text = await metrics();
    t.equal(value(text, 'csr_total{result="issued",code=""}'), 1, 'one certificate issued');
    const expiry1 = value(text, 'cert_expiry_timestamp_seconds')!;
    t.ok(expiry1 * 1000 > Date.now(), 'its not-after is in the future');
    t.ok(value(text, 'cert_next_renewal_seconds')! <= 7, 'the renewal is seconds away');
    t.equal(value(text, 'component_ready{component="certs"}'), 1);
    t.equal(value(text, 'component_ready{component="sidecar"}'), 1);
    t.equal(value(text, 'ready'), 1);
    t.match(text, /^process_resident_memory_bytes \d+/m, "the process's own metrics too");

    // Rotations: each one a CSR issued and an envoy hot restart.
    for (let i = 0; i < 300 && !(value(text, 'sidecar_epoch')! >= 1); i++) {
      await new Promise((r) => setTimeout(r, 200));
      text = await metrics();
    }
    t.ok(value(text, 'csr_total{result="issued",code=""}')! >= 2, 'renewed');
    t.ok(value(text, 'cert_expiry_timestamp_seconds')! > expiry1, 'the not-after moved');
    t.ok(value(text, 'sidecar_restarts_total{cause="rotation"}')! >= 1, 'envoy hot-restarted');
    t.ok(value(text, 'sidecar_epoch')! >= 1, 'into a new epoch');
    t.match(text, /cert_renewal_duration_seconds_count\{result="issued"\} [2-9]/);

    // envoy killed: a crash restart.
    const pid = sidecar.status().details?.pid as number;
    process.kill(pid, 'SIGKILL');
    for (
      let i = 0;
      i < 300 && value(text, 'sidecar_restarts_total{cause="crash"}') === undefined;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
      text = await metrics();
    }
    t.equal(value(text, 'sidecar_restarts_total{cause="crash"}'), 1, 'the crash restart counted');
    const st = JSON.parse((await get(`${url}/debug/status`)).body) as { pid: number };
    t.equal(st.pid, process.pid, '/debug/status is the agent status');
  },
);
