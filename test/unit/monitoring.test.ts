// The pieces of the monitoring endpoint and of `status`: the metric store before and after
// prom-client, the routes, the readiness verdict, /proc/locks, the status text, --watch.
import t from 'tap';
import { request } from 'node:http';
import { FakeClock } from '../../src/lib/clock';
import { acquireLock, fileId, lockedFiles, lockHolder } from '../../src/lib/lock';
import {
  answer,
  loadPrometheus,
  MetricStore,
  SERVER_LIMITS,
  startMonitorServer,
  type Metrics,
  type MonitorSource,
} from '../../src/observe/index';
import { judge } from '../../src/readiness';
import { isLoopback, judgeAt, type DaemonView } from '../../src/daemon/index';
import type { AgentStatus } from '../../src/agent';
import { exitCode, renderStatus, times, watch } from '../../src/cli/status';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';
import { tmpDir } from '../helpers/tmp';

void t.test('the store keeps what is recorded, hands it over once, then forwards', (t) => {
  const s = new MetricStore();
  s.inc('csr_total', { result: 'ca_error', code: 'AGENT_E_CA_UNAVAILABLE' });
  s.inc('csr_total', { code: 'AGENT_E_CA_UNAVAILABLE', result: 'ca_error' }, 2);
  s.set('sidecar_epoch', 1);
  s.set('sidecar_epoch', 3);
  for (let i = 0; i < 300; i++) s.observe('cert_renewal_duration_seconds', i, { result: 'failed' });
  const r = s.recorded();
  t.same(r.counters, [
    {
      name: 'csr_total',
      labels: { result: 'ca_error', code: 'AGENT_E_CA_UNAVAILABLE' },
      value: 3,
    },
  ]);
  t.same(r.gauges, [{ name: 'sidecar_epoch', value: 3 }]);
  t.equal(r.observations.length, 256, 'observations bounded before prom-client');
  t.equal(r.observations[0]!.value, 44, 'the newest kept');
  const calls: string[] = [];
  const sink: Metrics = {
    inc: (n, l, by) => calls.push(`inc ${n} ${JSON.stringify(l)} ${by}`),
    set: (n, v) => calls.push(`set ${n} ${v}`),
    observe: () => calls.push('observe'),
  };
  s.bind(sink);
  t.equal(calls.filter((c) => c === 'observe').length, 256);
  t.same(calls.slice(0, 2), [
    'inc csr_total {"result":"ca_error","code":"AGENT_E_CA_UNAVAILABLE"} 3',
    'set sidecar_epoch 3',
  ]);
  s.inc('reloads_total', { result: 'applied' });
  t.equal(calls.at(-1), 'inc reloads_total {"result":"applied"} 1', 'then forwarded');
  t.same(s.recorded().counters, [], 'nothing kept once bound');
  t.end();
});

void t.test('prom-client: our names, the values recorded before it loaded', async (t) => {
  const s = new MetricStore();
  s.inc('csr_total', { result: 'issued', code: '' });
  s.observe('cert_renewal_duration_seconds', 0.3, { result: 'issued' });
  const p = await loadPrometheus();
  s.bind(p.metrics);
  s.inc('csr_total', { result: 'issued', code: '' });
  const text = await p.render();
  t.match(text, /^istio_node_agent_csr_total\{result="issued",code=""\} 2$/m);
  t.match(
    text,
    /^istio_node_agent_cert_renewal_duration_seconds_bucket\{le="0.5",result="issued"\} 1$/m,
  );
  t.notMatch(text, /istio_node_agent_capture_rules/, 'never recorded: absent, not 0');
  t.match(p.contentType, /^text\/plain; version=0\.0\.4/);
});

const source = (o: Partial<MonitorSource> = {}): MonitorSource => ({
  live: () => true,
  readiness: () => ({ ready: true, body: { ready: true } }),
  status: () => ({ state: 'ready' }),
  metrics: () => Promise.resolve({ contentType: 'text/plain', body: 'm 1\n' }),
  ...o,
});

void t.test('routes: fixed paths, GET only', async (t) => {
  const table: [string, string, Partial<MonitorSource>, number, RegExp][] = [
    ['GET', '/healthz/live', {}, 200, /ok/],
    ['GET', '/healthz/live', { live: () => false }, 503, /not running/],
    ['GET', '/healthz/ready', {}, 200, /"ready": true/],
    [
      'GET',
      '/healthz/ready?verbose',
      { readiness: () => ({ ready: false, body: { notReady: { certs: 'down' } } }) },
      503,
      /"certs": "down"/,
    ],
    ['GET', '/metrics', {}, 200, /^m 1$/m],
    ['GET', '/debug/status', {}, 200, /"state": "ready"/],
    ['POST', '/metrics', {}, 405, /only GET/],
    ['GET', '/', {}, 404, /not found/],
    ['GET', '/debug/pprof', {}, 404, /not found/],
  ];
  for (const [method, url, o, status, body] of table) {
    const a = await answer(method, url, source(o));
    t.equal(a.status, status, `${method} ${url}`);
    t.match(a.body, body);
  }
});

void t.test('the server: loopback, bounded, answers', async (t) => {
  const server = await startMonitorServer({ host: '127.0.0.1', port: 0 }, source(), testDeps().log);
  t.teardown(() => server.close());
  t.match(server.address, /^127\.0\.0\.1:\d+$/);
  const r = await fetch(`http://${server.address}/healthz/live`);
  t.equal(r.status, 200);
  t.equal(r.headers.get('connection'), 'close');
  t.equal(
    r.headers.get('content-length'),
    String(Buffer.byteLength(await r.text())),
    'not chunked',
  );
  // Headers past the cap: refused without reaching a route.
  const big = await new Promise<number | undefined>((resolve) => {
    const [host, port] = server.address.split(':');
    const req = request(
      {
        host,
        port: Number(port),
        path: '/metrics',
        headers: { x: 'a'.repeat(SERVER_LIMITS.maxHeaderBytes * 2) },
      },
      (res) => {
        resolve(res.statusCode);
        res.resume();
      },
    );
    req.on('error', () => {
      resolve(undefined);
    });
    req.end();
  });
  t.not(big, 200, 'oversized headers are refused');
  const taken = await startMonitorServer(
    { host: '127.0.0.1', port: Number(server.address.split(':')[1]) },
    source(),
    testDeps().log,
  ).then(
    () => 'listening',
    (e: unknown) => (e as NodeJS.ErrnoException).code,
  );
  t.equal(taken, 'EADDRINUSE', 'a port in use is an error for the caller');
});

void t.test('readiness: components, expiry at the time of judging, a refused reload', (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const comps = {
    certs: { ready: true, summary: 'cert', validUntil: '2026-01-01T01:00:00.000Z' },
    sidecar: { ready: false, summary: 'sidecar envoy down', problem: 'crash loop: 5 exits' },
  };
  t.same(judge({ certs: comps.certs }, undefined, now), { ready: true, notReady: {} });
  t.same(judge({ certs: comps.certs }, undefined, now + 2 * 3600_000), {
    ready: false,
    notReady: { certs: 'expired at 2026-01-01T01:00:00.000Z' },
  });
  t.same(judge(comps, 'bad [AGENT_E_CONFIG_VALUE]', now).notReady, {
    sidecar: 'crash loop: 5 exits',
    reload: 'bad [AGENT_E_CONFIG_VALUE]',
  });
  t.same(judge({ dns: { ready: false, summary: 'dns on (0 names)' } }, undefined, now).notReady, {
    dns: 'dns on (0 names)',
  });
  t.end();
});

void t.test('/proc/locks: granted locks by device and inode, waiters ignored', async (t) => {
  const text = [
    '1: POSIX  ADVISORY  WRITE 18214 fe:00:5836121 0 EOF',
    '2: FLOCK  ADVISORY  WRITE 20137 fe:00:2146316 0 EOF',
    '2: -> FLOCK  ADVISORY  WRITE 20140 08:01:99 0 EOF',
    '3: OFDLCK ADVISORY  READ  -1 00:2d:2114 0 EOF',
  ].join('\n');
  t.same([...lockedFiles(text)], ['254:0:5836121', '254:0:2146316', '0:45:2114']);
  t.equal(fileId(65024n, 2146316n), '254:0:2146316');
  const dir = tmpDir(t, 'lock-holder');
  t.equal(await lockHolder(dir, 'agent.lock'), undefined, 'no lock file: no daemon ever');
  const lock = await acquireLock(dir, 'agent.lock', { holder: 'istio-node-agent run' });
  t.same(await lockHolder(dir, 'agent.lock'), {
    held: true,
    pid: process.pid,
    holder: 'istio-node-agent run',
  });
  await lock.release();
  t.same(await lockHolder(dir, 'agent.lock'), {
    held: false,
    pid: process.pid,
    holder: 'istio-node-agent run',
  });
});

const NOW = Date.parse('2026-01-01T12:00:00Z');
const st = (o: Partial<AgentStatus> = {}): AgentStatus => ({
  state: 'ready',
  ready: true,
  notReady: {},
  pid: 42,
  since: '2026-01-01T09:00:00.000Z',
  at: '2026-01-01T11:00:00.000Z',
  summary: 's',
  components: {
    certs: {
      ready: true,
      summary: 'cert valid until 2026-01-01T13:00:00.000Z, renewal at 2026-01-01T12:30:00.000Z',
      validUntil: '2026-01-01T13:00:00.000Z',
    },
  },
  daemon: { monitoring: '127.0.0.1:15014' },
  ...o,
});
const view = (o: Partial<DaemonView> = {}): DaemonView => ({
  running: true,
  pid: 42,
  source: 'endpoint',
  status: st(),
  writtenAt: undefined,
  note: undefined,
  ...o,
});

void t.test('status text: every instant against now; exit codes', (t) => {
  t.equal(
    renderStatus(view(), '/s', NOW),
    [
      'state: ready (pid 42, up 3h0m, http://127.0.0.1:15014)',
      'ok   certs: cert valid until 2026-01-01T13:00:00.000Z (in 1h0m), renewal at 2026-01-01T12:30:00.000Z (in 30m0s)',
      '',
    ].join('\n'),
  );
  t.equal(exitCode(view()), 0);
  const refused = st({
    state: 'degraded',
    ready: false,
    notReady: { reload: 'x [AGENT_E_CONFIG_VALUE]' },
    reload: { at: '2026-01-01T11:59:00.000Z', refused: 'x [AGENT_E_CONFIG_VALUE]' },
  });
  t.match(
    renderStatus(view({ status: refused }), '/s', NOW),
    /^FAIL reload: refused 2026-01-01T11:59:00\.000Z \(1m0s ago\): x \[AGENT_E_CONFIG_VALUE\]$/m,
  );
  t.equal(exitCode(view({ status: refused })), 1);
  t.equal(exitCode(view({ running: false })), 3);
  t.equal(exitCode(view({ status: undefined })), 1, 'running, no status yet: not ready');
  t.match(
    renderStatus(view({ running: false, source: 'file', writtenAt: NOW - 7200_000 }), '/s', NOW),
    /^state: not running \(no agent holds \/s\/agent\.lock\)\nlast status: ready, pid 42, written 2026-01-01T10:00:00\.000Z \(2h0m ago\)\n/,
  );
  t.equal(times('at 2026-01-03T12:00:00Z', NOW), 'at 2026-01-03T12:00:00Z (in 2d0h)');
  t.end();
});

void t.test('a status read from the file is judged again at the time of reading', (t) => {
  const later = Date.parse('2026-01-01T14:00:00Z');
  const j = judgeAt(st(), later);
  t.equal(j.state, 'degraded');
  t.same(j.notReady, { certs: 'expired at 2026-01-01T13:00:00.000Z' });
  t.equal(judgeAt(st(), NOW).state, 'ready');
  t.equal(judgeAt(st({ state: 'stopping' }), later).state, 'stopping', 'only a running state');
  t.end();
});

void t.test('--watch: a block every second until stopped', async (t) => {
  const clock = new FakeClock(NOW);
  const stop = new AbortController();
  const out: string[] = [];
  let n = 0;
  const done = watch(
    () => {
      n++;
      return Promise.resolve({ text: `sample ${n}\n`, code: n < 3 ? 0 : 1 });
    },
    { clock, signal: stop.signal, out: (s) => out.push(s), tty: false },
  );
  await clock.advance(1000);
  await clock.advance(1000);
  stop.abort();
  t.equal(await done, 1, 'the last exit code');
  t.same(out, [
    '--- 2026-01-01T12:00:00.000Z\nsample 1\n',
    '--- 2026-01-01T12:00:01.000Z\nsample 2\n',
    '--- 2026-01-01T12:00:02.000Z\nsample 3\n',
  ]);
  const tty: string[] = [];
  const s2 = new AbortController();
  const d2 = watch(() => Promise.resolve({ text: 'x\n', code: 0 }), {
    clock,
    signal: s2.signal,
    out: (s) => tty.push(s),
    tty: true,
  });
  await clock.advance(0);
  s2.abort();
  await d2;
  t.equal(tty[0], '\x1b[H\x1b[2Jx\n', 'on a terminal: redrawn in place');
});

void t.test('ISTIO_AGENT_MONITORING_ADDR', (t) => {
  t.same(testConfig().core.monitoring, { host: '127.0.0.1', port: 15014 });
  t.equal(testConfig({ ISTIO_AGENT_MONITORING_ADDR: 'off' }).core.monitoring, undefined);
  t.same(testConfig({ ISTIO_AGENT_MONITORING_ADDR: '[::1]:0' }).core.monitoring, {
    host: '::1',
    port: 0,
  });
  for (const bad of ['15014', '127.0.0.1:99999', 'a b:1', '[x]:1'])
    t.throws(() => testConfig({ ISTIO_AGENT_MONITORING_ADDR: bad }), {
      code: 'AGENT_E_CONFIG_VALUE',
    });
  t.ok(isLoopback('127.0.0.2') && isLoopback('::1') && isLoopback('localhost'));
  t.notOk(isLoopback('0.0.0.0') || isLoopback('10.0.0.1') || isLoopback('::'));
  t.end();
});
