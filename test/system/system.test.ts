// The system tier: the built .deb on a booted Debian 12 (debootstrap minbase + the package's
// dependencies), under the container's real systemd, driven with real systemctl and journalctl.
// Root only. The first run builds the Debian root (minutes); later runs reuse it from .cache/.
// Run alone: npx tap test/system/system.test.ts   (see README, "System tests")
//
// What each component adds is checked when that component exists in src/components.ts.
import t from 'tap';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { Container } from '../../scripts/system-test/container';
import {
  bootWithPackage,
  DOUBLES,
  installDoubles,
  missingTools,
} from '../../scripts/system-test/provision';
import { COMPONENT_FACTORIES } from '../../src/components';
import { requireRoot } from '../helpers/root';

const UNIT = 'istio-auth-node-agent.service';
const repo = path.resolve(__dirname, '../..');
const workParent = path.join(repo, '.cache', 'system-test');
const components = new Set(COMPONENT_FACTORIES.map((f) => f.name));
const CLUSTER_ENV = '/var/lib/istio/envoy/cluster.env';
// TEST-NET-2 addresses: dnsmasq hands them out as answers; nothing is ever sent to them.
const PILOT_IP = '198.51.100.7';
const PILOT_IP_AFTER_RELOAD = '198.51.100.8';
const IDENTITY = 'spiffe://cluster.local/ns/default/sa/vm';
const CA_UNIT = 'systest-ca.service';

interface JournalRecord {
  readonly MESSAGE: string;
  readonly PRIORITY: string;
  readonly _PID?: string;
  readonly _SYSTEMD_UNIT?: string;
  readonly SYSLOG_IDENTIFIER?: string;
  readonly __CURSOR: string;
  readonly __MONOTONIC_TIMESTAMP: string;
}

interface AgentLine {
  readonly level: string;
  readonly component?: string;
  readonly msg: string;
  readonly [k: string]: unknown;
}

const LEVEL_PRIORITY: Record<string, string> = {
  trace: '7',
  debug: '7',
  info: '6',
  warn: '4',
  error: '3',
  fatal: '2',
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(500);
  }
}

function show(c: Container, ...props: string[]): Promise<Record<string, string>> {
  return c.show(UNIT, ...props);
}

async function journal(c: Container, args: string): Promise<JournalRecord[]> {
  const out = await c.must(`journalctl --no-pager -o json ${args}`);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as JournalRecord);
}

/** The agent's own lines (every one, whatever unit journald filed it under). */
async function agentLines(
  c: Container,
  extra = '',
): Promise<(JournalRecord & { line: AgentLine })[]> {
  const recs = await journal(c, `-t istio-node-agent ${extra}`);
  return recs.map((r) => ({ ...r, line: JSON.parse(r.MESSAGE) as AgentLine }));
}

/** The notifications systemd logged as received for the unit (PID 1 runs at debug level). */
async function notifications(c: Container): Promise<string[]> {
  const recs = await journal(c, `_PID=1 UNIT=${UNIT}`);
  const out: string[] = [];
  for (const r of recs) {
    const m = /Got notification message from PID \d+ \((.*)\)$/.exec(r.MESSAGE);
    if (m) out.push(m[1]!);
  }
  return out;
}

async function pid1Says(c: Container, pattern: RegExp): Promise<string[]> {
  return (await journal(c, `_PID=1 UNIT=${UNIT}`))
    .map((r) => r.MESSAGE)
    .filter((m) => pattern.test(m));
}

/**
 * What is on the container's root file system: every path with type, mode, owner and group (and
 * a symlink's target), and the content hash of every file under /etc. Left out, each for a reason:
 * - /proc /sys /dev /run /tmp: API and runtime file systems, not the installed system;
 * - /var/tmp: services' PrivateTmp and the test's scratch files;
 * - /var/log/journal: the journal grows with every line (it is how this test reads the agent);
 * - /var/lib/dpkg /var/lib/apt /var/cache/apt /var/cache/debconf /var/log/dpkg.log /var/log/apt
 *   /var/log/alternatives.log: the package manager's own records of installing and purging
 *   (dpkg remembers a purged package, apt logs every run);
 * - /var/cache/man: man-db's index, rebuilt by its dpkg trigger when a man page comes and goes;
 * - /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- (any /etc/*-): the backups adduser and
 *   deluser leave of the previous version; /etc/passwd, /etc/group, ... themselves are compared.
 */
const LISTING = `
find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \\
  -o -path /var/tmp -o -path /var/log/journal -o -path /var/lib/dpkg -o -path /var/lib/apt \\
  -o -path /var/cache/apt -o -path /var/cache/debconf -o -path /var/cache/man \\
  -o -path /var/log/dpkg.log -o -path /var/log/apt -o -path /var/log/alternatives.log \\
  -o -path '/etc/*-' \\) -prune -o -printf '%y %m %u %g %p %l\\n' | LC_ALL=C sort
find /etc -xdev -type f ! -name '*-' -exec sha256sum {} + | LC_ALL=C sort -k2
`;

function diffLines(before: string, after: string): string[] {
  const a = new Set(before.split('\n'));
  const b = new Set(after.split('\n'));
  return [
    ...[...a].filter((l) => !b.has(l)).map((l) => `- ${l}`),
    ...[...b].filter((l) => !a.has(l)).map((l) => `+ ${l}`),
  ];
}

if (requireRoot(t, 'the system test (a booted Debian 12 container)')) {
  // Building the root takes minutes the first time; the run itself about three.
  t.setTimeout(60 * 60_000);
  const missing = missingTools();
  if (missing.length > 0) {
    t.fail(
      `missing ${missing.join(', ')}: apt-get install systemd-container debootstrap util-linux dpkg-dev binutils`,
    );
  } else {
    systemTest();
  }
}

function systemTest(): void {
  const started = Date.now();
  let c!: Container;

  // Other test files run the bundle in dist/ while this one builds the package: the build must
  // not write there (a half-written bundle made their agents exit 1 at load, in CI).
  const bundle = path.join(repo, 'dist', 'istio-node-agent.cjs');
  const bundleTime = (): number | undefined =>
    existsSync(bundle) ? statSync(bundle).mtimeMs : undefined;
  let bundleBefore: number | undefined;

  t.before(async () => {
    bundleBefore = bundleTime();
    c = await bootWithPackage(workParent, `ina-systest-${process.pid}`, (line) => {
      t.comment(line);
    });
    // PID 1 logs each notification it receives at debug level: that is how this test sees
    // READY/STATUS/WATCHDOG/RELOADING/STOPPING arrive.
    await c.must('systemd-analyze set-log-level debug');
    if (components.has('sidecar')) await installDoubles(c);
  });

  t.teardown(async () => {
    if (c) await c.destroy();
    t.comment(`system test took ${Math.round((Date.now() - started) / 1000)} s`);
  });

  let before = '';

  void t.test('building the package left dist/ as it was', async (t) => {
    t.equal(bundleTime(), bundleBefore, `${bundle} not rewritten`);
  });

  void t.test(
    'dpkg -i installs, creates the user and directories, enables but does not start',
    async (t) => {
      before = await c.must(LISTING);
      const r = await c.sh('dpkg -i /tmp/systest/agent.deb 2>&1');
      t.equal(r.code, 0, 'dpkg -i exits 0', { output: r.stdout });
      t.match(
        r.stdout,
        /not starting istio-auth-node-agent\.service yet/,
        'says why it is not started',
      );
      t.equal((await c.sh(`systemctl is-enabled ${UNIT}`)).stdout.trim(), 'enabled');
      t.match(
        await c.must('zcat /usr/share/doc/istio-node-agent/configuration.md.gz'),
        /ISTIO_SERVICE_CIDR/,
        'the reference is shipped where the help points',
      );
      const man = await c.must('zcat /usr/share/man/man1/istio-node-agent.1.gz');
      t.match(man, /\.B ISTIO_SERVICE_CIDR/, 'the man page lists the variables');
      t.match(man, /\.SH SIGNALS/, 'and the signals');
      t.equal(
        (await c.sh(`systemctl is-active ${UNIT}`)).stdout.trim(),
        'inactive',
        'an unconfigured agent is not started',
      );
      t.match(
        await c.must('getent passwd istio-proxy'),
        /^istio-proxy:x:\d+:\d+:[^:]*:\/var\/lib\/istio:\/usr\/sbin\/nologin$/m,
      );
      const owners = await c.must(
        'stat -c "%n %U %G %a" /var/lib/istio /var/lib/istio/envoy /var/lib/istio/proxy /var/lib/istio/config /var/lib/istio/config/mesh /var/log/istio /etc/certs',
      );
      t.equal(
        owners.trim(),
        [
          '/var/lib/istio root root 755',
          '/var/lib/istio/envoy root root 755',
          '/var/lib/istio/proxy istio-proxy istio-proxy 755',
          '/var/lib/istio/config istio-proxy istio-proxy 755',
          '/var/lib/istio/config/mesh istio-proxy istio-proxy 644',
          '/var/log/istio istio-proxy istio-proxy 755',
          '/etc/certs root root 755',
        ].join('\n'),
        "owners and modes as Istio 1.0 had them, but configuration and certificates are root's",
      );
      t.equal((await c.must('readlink /etc/istio')).trim(), '/var/lib/istio');
      t.match(
        await c.must(`dpkg-query -W -f='\${Conffiles}' istio-node-agent`),
        /\/var\/lib\/istio\/envoy\/cluster\.env/,
      );
      t.equal(
        (await c.sh('command -v node nodejs')).stdout,
        '',
        'no Node.js on the host: the agent carries its own',
      );
      t.match(await c.must('istio-node-agent version'), /^istio-node-agent \S+ \(node v?20\./);
    },
  );

  void t.test(
    'the unit: systemd-analyze verify is clean, security exposure at most 3.5',
    async (t) => {
      const v = await c.sh(`systemd-analyze verify /lib/systemd/system/${UNIT} 2>&1`);
      t.equal(v.code, 0, 'verify exits 0');
      t.equal(v.stdout.trim(), '', 'verify prints nothing');
      const s = await c.must(`systemd-analyze security --no-pager ${UNIT}`);
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(s);
      t.ok(m, 'security prints an overall exposure level');
      const score = Number(m?.[1]);
      t.comment(`systemd-analyze security ${UNIT}: ${score}`);
      t.ok(score <= 3.5, `exposure ${score} <= 3.5`);
    },
  );

  /** cluster.env for this test: every present component on, against what runs in the container. */
  function clusterEnv(): string[] {
    const env = ['ISTIO_AGENT_LOG_LEVEL=info', 'ISTIO_SYSTEST_UNKNOWN=1'];
    if (components.has('certs')) env.push('CITADEL_ADDRESS=127.0.0.1:8060', 'CITADEL_ENV=onprem');
    if (components.has('capture'))
      env.push('ISTIO_SERVICE_CIDR=10.96.0.0/12', 'ISTIO_INBOUND_PORTS=8080');
    if (components.has('dns'))
      env.push(
        `ISTIO_PILOT_IP=${PILOT_IP}`,
        'ISTIO_CITADEL_IP=198.51.100.9',
        'ISTIO_MIXER_IP=198.51.100.10',
      );
    if (components.has('sidecar'))
      env.push(
        'SIDECAR_MODE=envoy',
        `ISTIO_BIN_BASE=${DOUBLES}/bin`,
        // The container has only loopback (--private-network): give the workload an address
        // (TEST-NET-1; it only goes into envoy's node id).
        'ISTIO_SVC_IP=192.0.2.10',
      );
    return env;
  }

  const startCa = (): Promise<string> =>
    c.must(
      `systemd-run --unit=${CA_UNIT} --collect --quiet -p SyslogIdentifier=systest-ca /usr/bin/istio-node-agent dev-ca --listen 127.0.0.1:8060 --state-dir /tmp/systest/ca --bootstrap-identity ${IDENTITY} --bootstrap-dir /etc/certs`,
    );

  void t.test(
    'configured and started: READY only when every component is up, STATUS shows the summary',
    async (t) => {
      await c.must(
        `printf '%s\n' ${clusterEnv()
          .map((e) => `'${e}'`)
          .join(' ')} >> ${CLUSTER_ENV}`,
      );
      // The stall hook for the watchdog test, in a runtime drop-in (gone at the next boot).
      await c.must(
        `mkdir -p /run/systemd/system/${UNIT}.d && printf '[Service]\nEnvironment=ISTIO_AGENT_TEST_HOOKS=1\n' > /run/systemd/system/${UNIT}.d/test-hooks.conf && systemctl daemon-reload`,
      );
      let bootstrapHash = '';
      if (components.has('certs')) {
        // The test CA, run inside as a transient service, writes the bootstrap set; then it is
        // stopped so that the agent starts while the CA is away.
        await startCa();
        await waitFor(
          'the bootstrap set',
          async () => (await c.sh('test -s /etc/certs/cert-chain.pem')).code === 0,
          30_000,
        );
        await c.must(`systemctl stop ${CA_UNIT}`);
        bootstrapHash = await c.must('sha256sum < /etc/certs/cert-chain.pem');
        await c.must(`systemctl start --no-block ${UNIT}`);
        await sleep(8_000);
        const waiting = await show(c, 'ActiveState', 'StatusText');
        t.equal(
          waiting.ActiveState,
          'activating',
          'without a certificate from the CA the unit is not active',
        );
        t.equal(
          await c.must('sha256sum < /etc/certs/cert-chain.pem'),
          bootstrapHash,
          'still the bootstrap set',
        );
        t.comment(`STATUS while waiting for the CA: ${waiting.StatusText}`);
        t.match(
          waiting.StatusText,
          /certs: .*AGENT_E_CA_UNAVAILABLE/,
          'STATUS says why the unit is not active yet',
        );
        await startCa();
        await waitFor(
          'the unit to be active',
          async () => (await show(c, 'ActiveState')).ActiveState === 'active',
          120_000,
        );
      } else {
        const r = await c.sh(`systemctl start ${UNIT}`, { timeoutMs: 300_000 });
        t.equal(r.code, 0, 'systemctl start exits 0', { stderr: r.stderr });
      }
      const st = await show(c, 'ActiveState', 'SubState', 'StatusText', 'MainPID', 'NRestarts');
      t.equal(st.ActiveState, 'active');
      t.equal(st.SubState, 'running');
      t.ok(Number(st.MainPID) > 0, 'has a main process');
      const environ = await c.sh(`tr '\\0' '\\n' < /proc/${st.MainPID}/environ`);
      t.match(
        environ.stdout,
        /^NODE_OPTIONS=--use-openssl-ca$/m,
        "runs with the unit's node options (OpenSSL's CA store: a faster first TLS context)",
      );
      t.comment(`STATUS: ${st.StatusText}`);
      if (components.size === 0) t.equal(st.StatusText, 'ready; no components enabled');
      if (components.has('certs'))
        t.match(st.StatusText, /cert/, 'STATUS has the certificate part');
      if (components.has('capture'))
        t.match(st.StatusText, /capture on/, 'STATUS has the capture part');
      if (components.has('dns'))
        t.match(st.StatusText, /dns on \(\d+ names\)/, 'STATUS has the DNS part');
      if (components.has('sidecar'))
        t.match(st.StatusText, /sidecar envoy epoch \d+/, 'STATUS has the sidecar part');
      t.notMatch(st.StatusText, /starting/, 'STATUS is the ready summary, not the start-up one');
      const notes = await notifications(c);
      const ready = notes.findIndex((n) => n.startsWith('READY=1'));
      t.ok(ready >= 0, 'systemd received READY=1');
      t.match(notes[ready], /READY=1, STATUS=/, 'READY=1 came with STATUS=');
      t.ok(
        notes.slice(0, ready).includes('STATUS=starting'),
        'STATUS=starting came before READY=1',
      );
      t.ok(notes.includes('WATCHDOG=1'), 'systemd received WATCHDOG=1');
      const status = await c.must(`systemctl status --no-pager ${UNIT} || true`);
      t.ok(status.includes(`Status: "${st.StatusText}"`), 'systemctl status shows it');
      if (components.has('certs')) {
        t.not(
          await c.must('sha256sum < /etc/certs/cert-chain.pem'),
          bootstrapHash,
          'the CA-issued set replaced the bootstrap',
        );
        // Ordering from the journal (one boot, one monotonic clock): the certificate line, written
        // after the set is on disk, comes before the READY=1 that made the unit active.
        const approved = (await agentLines(c)).find((r) =>
          /CSR is approved successfully\. Will renew cert in /.test(r.line.msg),
        );
        t.ok(approved, 'the renewal line is in the journal');
        t.equal(approved?.PRIORITY, '6', 'at info');
        const readyRec = (await journal(c, `_PID=1 UNIT=${UNIT}`)).find((r) =>
          /Got notification message from PID \d+ \(READY=1/.test(r.MESSAGE),
        );
        t.ok(
          approved &&
            readyRec &&
            Number(approved.__MONOTONIC_TIMESTAMP) < Number(readyRec.__MONOTONIC_TIMESTAMP),
          'the cert set was on disk before READY=1',
        );
      }
    },
  );

  void t.test(
    'monitoring: /healthz/ready is 200 and /metrics has the certificate expiry; status agrees',
    async (t) => {
      // The container has no node and no curl: a GET through bash's /dev/tcp. The endpoint closes
      // the connection after each answer, so `cat` ends.
      const get = async (route: string): Promise<{ status: number; body: string }> => {
        const r = await c.exec([
          'bash',
          '-c',
          `exec 3<>/dev/tcp/127.0.0.1/15014 && printf 'GET ${route} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3 && timeout 10 cat <&3`,
        ]);
        const m = /^HTTP\/1\.1 (\d{3})/.exec(r.stdout);
        const split = r.stdout.indexOf('\r\n\r\n');
        return {
          status: Number(m?.[1] ?? 0),
          body: split < 0 ? '' : r.stdout.slice(split + 4),
        };
      };
      t.equal((await get('/healthz/live')).status, 200, '/healthz/live');
      const ready = await get('/healthz/ready');
      t.equal(ready.status, 200, '/healthz/ready', { body: ready.body });
      const metrics = await get('/metrics');
      t.equal(metrics.status, 200, '/metrics');
      t.match(metrics.body, /^istio_node_agent_build_info\{/m, 'build info');
      t.match(metrics.body, /^istio_node_agent_ready 1$/m, 'ready 1');
      if (components.has('certs')) {
        const m = /^istio_node_agent_cert_expiry_timestamp_seconds (\S+)$/m.exec(metrics.body);
        t.ok(m, 'the certificate expiry is a metric');
        t.ok(Number(m?.[1]) * 1000 > Date.now(), 'in the future');
        t.match(metrics.body, /^istio_node_agent_csr_total\{[^}]*result="issued"[^}]*\} [1-9]/m);
      }
      const st = await c.sh('istio-node-agent status --json');
      t.equal(st.code, 0, 'status exits 0: running and ready', { stderr: st.stderr });
      t.match(JSON.parse(st.stdout), { state: 'ready', ready: true }, 'the live daemon, ready');
    },
  );

  if (components.has('capture')) {
    void t.test("capture: the ISTIO chains are in the container's netfilter", async (t) => {
      const nat = await c.must('iptables-save -t nat');
      t.match(nat, /^:ISTIO_OUTPUT /m, 'ISTIO_OUTPUT chain');
      t.match(nat, /^:ISTIO_REDIRECT /m, 'ISTIO_REDIRECT chain');
      t.match(
        nat,
        /-A ISTIO_OUTPUT -d 10\.96\.0\.0\/12 .*-j ISTIO_REDIRECT/,
        'the service CIDR goes to envoy',
      );
      t.match(nat, /-A PREROUTING -p tcp -j ISTIO_INBOUND/, 'inbound capture');
      t.match(nat, /--dport 8080 /, 'the inbound port');
    });
  }

  if (components.has('sidecar')) {
    void t.test('sidecar: the envoy test double runs as istio-proxy in the unit', async (t) => {
      const ps = await c.must('ps -u istio-proxy -o user:32=,args=');
      t.match(
        ps,
        /^istio-proxy\s+.*fake-envoy\.cjs .*--restart-epoch 0/m,
        'envoy (double) runs as istio-proxy',
      );
      const cgroup = await c.must(`systemctl show -p ControlGroup --value ${UNIT}`);
      const pids = await c.must(
        `cat /sys/fs/cgroup/unified${cgroup.trim()}/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/systemd${cgroup.trim()}/cgroup.procs`,
      );
      const envoyPid = (
        await c.must('ps -u istio-proxy -o pid=,args= | grep fake-envoy | head -n 1')
      )
        .trim()
        .split(/\s+/)[0];
      t.ok(pids.split('\n').includes(envoyPid!), "in the unit's cgroup (KillMode=mixed reaps it)");
      t.match(
        await c.must(
          'curl -s http://127.0.0.1:15000/ready 2>/dev/null || ' +
            DOUBLES +
            "/node -e \"require('http').get('http://127.0.0.1:15000/ready', r => r.pipe(process.stdout))\"",
        ),
        /LIVE/,
        'its admin port says LIVE',
      );
    });
  }

  if (components.has('dns')) {
    void t.test('dns: the dnsmasq drop-in is in place and names resolve through it', async (t) => {
      t.match(
        await c.must('cat /etc/dnsmasq.d/kubedns'),
        new RegExp(`address=/istio-pilot\\.istio-system/${PILOT_IP.replace(/\./g, '\\.')}`),
      );
      t.equal((await c.sh('systemctl is-active dnsmasq')).stdout.trim(), 'active');
      t.match(await c.must('head -n 20 /etc/resolv.conf'), /^nameserver 127\.0\.0\.1$/m);
      t.match(
        await c.must('getent hosts istio-pilot.istio-system'),
        new RegExp(`^${PILOT_IP.replace(/\./g, '\\.')}\\s`),
      );
    });
  }

  void t.test(
    'journald: levels map to priorities, -p warning is exactly the warnings, fields in -o json',
    async (t) => {
      const lines = await waitFor(
        'the agent is ready in the journal',
        async () => {
          const l = await agentLines(c);
          return l.some((x) => x.line.msg === 'agent is ready') && l;
        },
        30_000,
      );
      for (const r of lines) {
        t.equal(
          r.PRIORITY,
          LEVEL_PRIORITY[r.line.level],
          `"${r.line.msg}" (${r.line.level}) has PRIORITY ${r.PRIORITY}`,
        );
        t.ok(r.MESSAGE.startsWith('{'), 'the <N> prefix is stripped; MESSAGE is our JSON');
        t.type(r.line.component, 'string', 'every line has a component field');
      }
      const warnings = lines.filter((r) => ['warn', 'error', 'fatal'].includes(r.line.level));
      t.ok(
        warnings.some((r) => /unknown variable ISTIO_SYSTEST_UNKNOWN/.test(r.line.msg)),
        'the config warning is there',
      );
      const pWarning = await agentLines(c, '-p warning');
      t.same(
        pWarning.map((r) => r.__CURSOR),
        warnings.map((r) => r.__CURSOR),
        '-p warning is exactly the warnings and errors',
      );
      t.ok(
        lines.some((r) => r.line.msg === 'agent is ready' && r.PRIORITY === '6'),
        'the ready line is at info',
      );
      const errs = await c.must(`journalctl --no-pager -u ${UNIT} -p err -o cat`);
      t.equal(errs.replace('-- No entries --', '').trim(), '', 'journalctl -u … -p err is empty');
    },
  );

  void t.test(
    'reload: RELOADING=1 … READY=1, the changed variables apply, same process',
    async (t) => {
      const { MainPID } = await show(c, 'MainPID');
      await c.must(
        `sed -i 's/^ISTIO_AGENT_LOG_LEVEL=info$/ISTIO_AGENT_LOG_LEVEL=trace/' ${CLUSTER_ENV}`,
      );
      if (components.has('dns'))
        await c.must(
          `sed -i 's/^ISTIO_PILOT_IP=.*/ISTIO_PILOT_IP=${PILOT_IP_AFTER_RELOAD}/' ${CLUSTER_ENV}`,
        );
      if (components.has('capture'))
        await c.must(
          `sed -i 's|^ISTIO_SERVICE_CIDR=.*|ISTIO_SERVICE_CIDR=10.96.0.0/12,172.30.0.0/16|' ${CLUSTER_ENV}`,
        );
      const seenBefore = (await notifications(c)).length;
      t.equal((await c.sh(`systemctl reload ${UNIT}`)).code, 0, 'systemctl reload');
      const after = await waitFor(
        'READY=1 after RELOADING=1',
        async () => {
          const n = (await notifications(c)).slice(seenBefore);
          const i = n.findIndex((x) => x.startsWith('RELOADING=1'));
          return i >= 0 && n.slice(i).some((x) => x.startsWith('READY=1')) && n;
        },
        30_000,
      );
      t.match(
        after.find((x) => x.startsWith('RELOADING=1')),
        /^RELOADING=1, MONOTONIC_USEC=\d+$/,
      );
      t.ok(
        (await pid1Says(c, /Changed running -> reload/)).length > 0,
        'the unit went through "reloading"',
      );
      const lines = await waitFor(
        'a trace line after the reload',
        async () => {
          const l = await agentLines(c);
          const i = l.findIndex((r) => r.line.msg === 'log level is now trace');
          return i >= 0 && l.slice(i).some((r) => r.line.level === 'trace') && l;
        },
        30_000,
      );
      t.ok(lines.some((r) => r.line.msg === 'configuration reloaded'));
      t.equal((await show(c, 'MainPID')).MainPID, MainPID, 'reloaded in place, not restarted');
      // Lines logged well after the start are filed under the unit: `journalctl -u … -p warning`
      // has the warning the reload logged again (see docs/operations.md on the first second).
      const unitWarn = await c.must(`journalctl --no-pager -u ${UNIT} -p warning -o cat`);
      t.match(
        unitWarn,
        /unknown variable ISTIO_SYSTEST_UNKNOWN/,
        'journalctl -u … -p warning shows the warning',
      );
      t.notMatch(unitWarn, /"level":"(info|debug|trace)"/, 'and no info, debug or trace line');
      if (components.has('dns')) {
        await waitFor(
          'the new pilot address in DNS',
          async () =>
            (await c.sh('getent hosts istio-pilot.istio-system')).stdout.startsWith(
              PILOT_IP_AFTER_RELOAD,
            ),
          30_000,
        );
        t.pass('dns: the changed ISTIO_PILOT_IP is served after the reload');
      }
      if (components.has('capture')) {
        await waitFor(
          'the new service CIDR in the capture rules',
          async () =>
            /-A ISTIO_OUTPUT -d 172\.30\.0\.0\/16 .*-j ISTIO_REDIRECT/.test(
              await c.must('iptables-save -t nat'),
            ),
          30_000,
        );
        t.pass('capture: the added ISTIO_SERVICE_CIDR range is captured after the reload');
      }
    },
  );

  void t.test('kill -9 of the main process: systemd restarts it', async (t) => {
    const st = await show(c, 'MainPID', 'NRestarts');
    await c.must(`kill -9 ${st.MainPID}`);
    const next = await waitFor(
      'the restarted agent',
      async () => {
        const s = await show(c, 'MainPID', 'NRestarts', 'ActiveState');
        return s.ActiveState === 'active' && s.MainPID !== st.MainPID && Number(s.MainPID) > 0 && s;
      },
      60_000,
    );
    t.equal(Number(next.NRestarts), Number(st.NRestarts) + 1, 'NRestarts went up by one');
    t.ok((await pid1Says(c, /Main process exited, code=killed, status=9\/KILL/)).length > 0);
  });

  void t.test(
    'watchdog: a stalled agent (test hook) is killed and restarted by systemd',
    async (t) => {
      const st = await show(c, 'MainPID', 'NRestarts', 'WatchdogUSec');
      t.equal(st.WatchdogUSec, '30s');
      await c.must(`systemctl kill --kill-who=main -s SIGUSR2 ${UNIT}`);
      const next = await waitFor(
        'the watchdog restart',
        async () => {
          const s = await show(c, 'MainPID', 'NRestarts', 'ActiveState');
          return s.ActiveState === 'active' && Number(s.NRestarts) > Number(st.NRestarts) && s;
        },
        90_000,
      );
      t.equal(Number(next.NRestarts), Number(st.NRestarts) + 1);
      t.ok(
        (await pid1Says(c, /Watchdog timeout \(limit 30s\)!/)).length > 0,
        'systemd logged the watchdog timeout',
      );
      t.ok((await pid1Says(c, /Failed with result 'watchdog'/)).length > 0);
      t.ok(
        (await agentLines(c)).some(
          (r) => r.line.msg === 'test hook: blocking the event loop for good',
        ),
      );
    },
  );

  if (components.has('certs')) {
    void t.test(
      'upgrade (dpkg -i again): the agent is restarted on the new binary, config and certs kept',
      async (t) => {
        const before = await show(c, 'MainPID');
        const conf = await c.must(`sha256sum ${CLUSTER_ENV}`);
        // An install with Istio 1.0's owners: the upgrade gives them back to root.
        await c.must(
          `chown istio-proxy:istio-proxy /var/lib/istio/envoy /etc/certs ${CLUSTER_ENV} && chmod 0664 ${CLUSTER_ENV}`,
        );
        const r = await c.sh('dpkg -i /tmp/systest/agent.deb 2>&1', { timeoutMs: 300_000 });
        t.equal(r.code, 0, 'dpkg -i exits 0', { output: r.stdout });
        t.match(
          r.stdout,
          /istio-node-agent: istio-auth-node-agent\.service is (running|still starting)/,
          'postinst says how the restart went, without blocking on it',
        );
        const after = await waitFor(
          'the restarted agent',
          async () => {
            const s = await show(c, 'MainPID', 'ActiveState');
            return s.ActiveState === 'active' && s.MainPID !== before.MainPID && s;
          },
          120_000,
        );
        t.ok(Number(after.MainPID) > 0, 'running again');
        t.equal(await c.must(`sha256sum ${CLUSTER_ENV}`), conf, 'cluster.env as the admin left it');
        t.equal(
          (
            await c.must(`stat -c "%n %U %G %a" /var/lib/istio/envoy /etc/certs ${CLUSTER_ENV}`)
          ).trim(),
          [
            '/var/lib/istio/envoy root root 755',
            '/etc/certs root root 755',
            `${CLUSTER_ENV} root root 644`,
          ].join('\n'),
          "the upgrade made the configuration and certificate directories root's again",
        );
        t.equal(
          (await c.sh('test -s /etc/certs/cert-chain.pem && test -s /etc/certs/key.pem')).code,
          0,
          'certs kept',
        );
      },
    );
  }

  if (components.has('sidecar')) {
    void t.test(
      'sidecar, pilot-agent mode: pilot-agent and its envoy run as istio-proxy in the unit',
      async (t) => {
        await c.must(`sed -i 's/^SIDECAR_MODE=envoy$/SIDECAR_MODE=pilot-agent/' ${CLUSTER_ENV}`);
        const r = await c.sh(`systemctl restart ${UNIT}`, { timeoutMs: 180_000 });
        t.equal(r.code, 0, 'systemctl restart exits 0', { stderr: r.stderr });
        const ps = await waitFor(
          'pilot-agent and envoy',
          async () => {
            const out = await c.must('ps -u istio-proxy -o pid=,args=');
            return /fake-pilot-agent\.cjs proxy/.test(out) && /fake-envoy\.cjs/.test(out) && out;
          },
          60_000,
        );
        const cgroup = (await c.must(`systemctl show -p ControlGroup --value ${UNIT}`)).trim();
        const procs = (
          await c.must(
            `cat /sys/fs/cgroup/unified${cgroup}/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/systemd${cgroup}/cgroup.procs`,
          )
        ).split('\n');
        for (const line of ps.trim().split('\n')) {
          const [pid, ...args] = line.trim().split(/\s+/);
          t.ok(procs.includes(pid!), `${args.slice(0, 2).join(' ')} is in the unit's cgroup`);
        }
        const st = await show(c, 'ActiveState', 'StatusText');
        t.equal(st.ActiveState, 'active');
        t.match(st.StatusText, /sidecar pilot-agent/);
      },
    );
  }

  void t.test(
    'systemctl stop: STOPPING=1, nothing of ours keeps running, no capture rules',
    async (t) => {
      const seenBefore = (await notifications(c)).length;
      const r = await c.sh(`systemctl stop ${UNIT}`, { timeoutMs: 120_000 });
      t.equal(r.code, 0);
      t.equal((await c.sh(`systemctl is-active ${UNIT}`)).stdout.trim(), 'inactive');
      t.ok(
        (await notifications(c)).slice(seenBefore).includes('STOPPING=1'),
        'systemd received STOPPING=1',
      );
      t.same(
        await pid1Says(c, /timed out\. Killing/),
        [],
        'the agent stopped within TimeoutStopSec',
      );
      const ps = await c.must('ps -e -o user=,args=');
      t.notMatch(
        ps,
        /istio-node-agent run/,
        'no agent process (the test CA, a separate unit, still runs)',
      );
      t.notMatch(ps, /^istio-proxy\s/m, 'no process of istio-proxy');
      const rules = await c.must('iptables-save; ip6tables-save');
      t.notMatch(rules, /ISTIO/, 'no capture chains');
    },
  );

  void t.test('dpkg --purge leaves the file system as it was before the install', async (t) => {
    if (components.has('certs')) await c.sh(`systemctl stop ${CA_UNIT}`);
    const r = await c.sh('apt-get purge -y istio-node-agent 2>&1');
    t.equal(r.code, 0, 'apt-get purge exits 0', { output: r.stdout.slice(-2000) });
    t.equal(
      (await c.sh('getent passwd istio-proxy; getent group istio-proxy')).stdout,
      '',
      'user and group gone',
    );
    const after = await c.must(LISTING);
    t.same(diffLines(before, after), [], 'same paths, modes, owners and /etc contents');
    if (components.has('dns'))
      t.equal(
        (await c.sh('systemctl is-active dnsmasq')).stdout.trim(),
        'active',
        'dnsmasq still runs',
      );
  });
}
