import t from 'tap';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ComponentDeps } from '../../src/component';
import { cleanDns, createDnsComponentFor, dnsSettings, type DnsHost } from '../../src/dns/index';
import { checkDropIn, type DnsmasqControl } from '../../src/dns/dnsmasq';
import { RESOLV_CONF_BLOCK } from '../../src/dns/resolver';
import { exec } from '../../src/lib/exec';
import { silentLogger } from '../../src/observe/logger';
import { put, read } from '../helpers/dns-root';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';
import { tmpDir } from '../helpers/tmp';
import { createNetns, type Netns } from '../helpers/netns';
import { requireRoot } from '../helpers/root';

const execFileP = promisify(execFile);
const DNSMASQ = ['/usr/sbin/dnsmasq', '/sbin/dnsmasq'].find((p) => existsSync(p));

/** Where the stand-in for the cluster's kube-dns listens, inside the namespace. */
const KUBE_DNS = '10.96.0.10';

/**
 * A real dnsmasq in the test's namespace, started the way the test chooses. As the host's
 * dnsmasq it reads the drop-in directory of the temporary root; `restart` stops it and starts it
 * again, which is what the component asks of the host's service manager.
 */
class NamespacedDnsmasq implements DnsmasqControl {
  readonly how = 'test: stop and start dnsmasq in the namespace';
  restarts = 0;
  tryRestarts = 0;
  private proc: ChildProcess | undefined;
  private stderr = '';
  private n = 0;

  constructor(
    private readonly ns: Netns,
    private readonly dir: string,
    private readonly args: readonly string[],
  ) {}

  check(content: string): Promise<void> {
    return checkDropIn(exec, DNSMASQ!, content);
  }

  async restart(opts: { onlyIfRunning?: boolean } = {}): Promise<void> {
    if (opts.onlyIfRunning) {
      this.tryRestarts++;
      if (!this.proc) return;
    } else this.restarts++;
    await this.stop();
    await this.start();
  }

  async start(): Promise<void> {
    const pidFile = path.join(this.dir, `dnsmasq-${this.n++}.pid`);
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns.name,
        DNSMASQ!,
        '--keep-in-foreground',
        `--pid-file=${pidFile}`,
        ...this.args,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.proc = child;
    // Ready once it wrote its pid file, which dnsmasq does after binding its sockets.
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null)
        throw new Error(`dnsmasq exited ${child.exitCode}: ${this.stderr}`);
      if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '') return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`dnsmasq did not start: ${this.stderr}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }

  get log(): string {
    return this.stderr;
  }
}

/** Asks the DNS server at `server` from inside the namespace, with node's resolver (c-ares). */
async function ask(
  ns: Netns,
  name: string,
  type: 'A' | 'AAAA',
  server = '127.0.0.1',
): Promise<string[] | string> {
  const script = `
    const { promises: dns } = require('node:dns');
    const r = new dns.Resolver({ timeout: 2000, tries: 1 });
    r.setServers([process.argv[1]]);
    r.resolve(process.argv[2], process.argv[3]).then(
      (a) => console.log(JSON.stringify(a)),
      (e) => console.log(JSON.stringify(e.code)));`;
  const { stdout } = await execFileP('ip', [
    'netns',
    'exec',
    ns.name,
    process.execPath,
    '-e',
    script,
    server,
    name,
    type,
  ]);
  return JSON.parse(stdout) as string[] | string;
}

const deps = (): ComponentDeps => testDeps({ random: Math.random });

if (requireRoot(t, 'the dnsmasq integration test')) {
  void t.test(
    'real dnsmasq with the rendered drop-in, kube-dns stand-in, change then apply',
    { skip: DNSMASQ ? false : 'dnsmasq is not installed (package dnsmasq-base)' },
    async (t) => {
      const root = tmpDir(t, 'dns-int-', { mode: 0o700 });
      const ns = createNetns('dns');
      const procs: NamespacedDnsmasq[] = [];
      t.teardown(async () => {
        for (const p of procs) await p.stop();
        ns.remove();
      });
      await ns.run('ip', ['addr', 'add', `${KUBE_DNS}/32`, 'dev', 'lo']);
      const run = path.join(root, 'run-test');
      mkdirSync(run);
      mkdirSync(path.join(root, 'etc/dnsmasq.d'), { recursive: true });
      put(root, '/etc/resolv.conf', 'search corp.example\nnameserver 10.0.0.2\n');

      // The cluster's kube-dns: answers names under svc.cluster.local, nothing else.
      const kubeDns = new NamespacedDnsmasq(ns, run, [
        `--listen-address=${KUBE_DNS}`,
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--port=53',
        '--host-record=productpage.bookinfo.svc.cluster.local,10.1.2.3',
        '--host-record=reviews.bookinfo.svc.cluster.local,10.1.2.4',
      ]);
      procs.push(kubeDns);
      await kubeDns.start();
      t.same(
        await ask(ns, 'productpage.bookinfo.svc.cluster.local', 'A', KUBE_DNS),
        ['10.1.2.3'],
        'the stand-in answers directly',
      );

      // The host's dnsmasq, as the test runs it: the drop-in directory of the temp root, 127.0.0.1.
      const local = new NamespacedDnsmasq(ns, run, [
        `--conf-dir=${path.join(root, 'etc/dnsmasq.d')}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--port=53',
      ]);
      procs.push(local);
      await local.start();
      t.equal(
        await ask(ns, 'istio-pilot.istio-system', 'A'),
        'EREFUSED',
        'before the agent: dnsmasq does not know the mesh',
      );

      const host: DnsHost = {
        root,
        detectDnsmasq: () => Promise.resolve({ installed: true, control: local }),
        resolved: { how: 'none', reload: () => Promise.resolve() },
        now: () => Date.now(),
      };
      const vars = {
        ISTIO_DNS_SERVER: KUBE_DNS,
        ISTIO_PILOT_IP: '10.0.0.7',
        ISTIO_CITADEL_IP: 'fd00::8',
        ISTIO_MIXER_IP: '10.0.0.9',
        ISTIO_DNS_RESOLVER: 'resolv.conf',
      };
      const c = await createDnsComponentFor(testConfig(vars), deps(), host);
      if (!c) throw new Error('DNS component is off');
      await c.start(new AbortController().signal);
      t.equal(local.restarts, 1, 'start wrote the drop-in and restarted dnsmasq once');
      t.equal(c.status().summary, 'dns on (11 names)');

      t.same(
        await ask(ns, 'istio-pilot.istio-system', 'A'),
        ['10.0.0.7'],
        'istio-pilot.istio-system is ISTIO_PILOT_IP',
      );
      t.same(await ask(ns, 'istio-pilot', 'A'), ['10.0.0.7'], 'istio-pilot (bare) too');
      t.same(
        await ask(ns, 'istio-citadel.istio-system', 'AAAA'),
        ['fd00::8'],
        'an IPv6 citadel address',
      );
      t.same(await ask(ns, 'istio-ca', 'AAAA'), ['fd00::8']);
      t.same(await ask(ns, 'istio-telemetry.istio-system', 'A'), ['10.0.0.9']);
      t.same(await ask(ns, 'istio-policy', 'A'), ['10.0.0.9']);
      t.same(
        await ask(ns, 'productpage.bookinfo.svc.cluster.local', 'A'),
        ['10.1.2.3'],
        'a service name is answered by the kube-dns stand-in',
      );
      t.same(await ask(ns, 'reviews.bookinfo.svc.cluster.local', 'A'), ['10.1.2.4']);
      t.equal(
        read(root, '/etc/resolv.conf'),
        RESOLV_CONF_BLOCK + 'search corp.example\nnameserver 10.0.0.2\n',
        'the resolver asks 127.0.0.1 first',
      );

      // Same configuration again: nothing restarts.
      await c.reload(testConfig(vars));
      t.equal(local.restarts, 1, 'reload without a change does not restart dnsmasq');

      // A new pilot address, then apply: the next answer has it.
      await c.reload(testConfig({ ...vars, ISTIO_PILOT_IP: '10.0.0.70' }));
      t.equal(local.restarts, 2, 'the change restarted dnsmasq');
      t.same(
        await ask(ns, 'istio-pilot.istio-system', 'A'),
        ['10.0.0.70'],
        'the next answer has the new ISTIO_PILOT_IP',
      );
      t.same(
        await ask(ns, 'productpage.bookinfo.svc.cluster.local', 'A'),
        ['10.1.2.3'],
        'forwarding still works',
      );

      // Stop leaves DNS working; clean takes it away.
      await c.stop();
      t.same(
        await ask(ns, 'istio-pilot.istio-system', 'A'),
        ['10.0.0.70'],
        'after stop the host still resolves the mesh',
      );
      const cleaned = await cleanDns(dnsSettings(testConfig(vars)), host, silentLogger());
      t.equal(local.tryRestarts, 1, 'clean restarted the running dnsmasq');
      t.same(cleaned.undone.map((u) => `${u.path} ${u.outcome}`).sort(), [
        '/etc/dnsmasq.d/kubedns removed',
        '/etc/resolv.conf restored',
      ]);
      t.equal(
        await ask(ns, 'istio-pilot.istio-system', 'A'),
        'EREFUSED',
        'after clean dnsmasq no longer answers mesh names',
      );
      t.equal(
        read(root, '/etc/resolv.conf'),
        'search corp.example\nnameserver 10.0.0.2\n',
        'resolv.conf is back',
      );
    },
  );

  void t.test(
    '127.0.0.1 put first in resolv.conf does not loop: dnsmasq skips itself and forwards to the rest',
    { skip: DNSMASQ ? false : 'dnsmasq is not installed (package dnsmasq-base)' },
    async (t) => {
      const root = tmpDir(t, 'dns-int-', { mode: 0o700 });
      const ns = createNetns('dns');
      const procs: NamespacedDnsmasq[] = [];
      t.teardown(async () => {
        for (const p of procs) await p.stop();
        ns.remove();
      });
      await ns.run('ip', ['addr', 'add', `${KUBE_DNS}/32`, 'dev', 'lo']);
      const run = path.join(root, 'run-test');
      mkdirSync(run);
      mkdirSync(path.join(root, 'etc/dnsmasq.d'), { recursive: true });
      chmodSync(root, 0o755); // dnsmasq reads the resolv-file after it dropped root
      // The host's upstream resolver (the stand-in plays it here): it knows example.test.
      const upstream = new NamespacedDnsmasq(ns, run, [
        `--listen-address=${KUBE_DNS}`,
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--port=53',
        '--host-record=www.example.test,192.0.2.80',
      ]);
      procs.push(upstream);
      await upstream.start();
      put(root, '/etc/resolv.conf', `nameserver ${KUBE_DNS}\n`);

      // dnsmasq as Debian runs it: upstream servers from resolv.conf (here the temp root's).
      const local = new NamespacedDnsmasq(ns, run, [
        `--conf-dir=${path.join(root, 'etc/dnsmasq.d')}`,
        `--resolv-file=${path.join(root, 'etc/resolv.conf')}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-hosts',
        '--port=53',
        '--log-queries',
        '--log-facility=-',
      ]);
      procs.push(local);
      await local.start();
      const host: DnsHost = {
        root,
        detectDnsmasq: () => Promise.resolve({ installed: true, control: local }),
        resolved: { how: 'none', reload: () => Promise.resolve() },
        now: () => Date.now(),
      };
      const c = await createDnsComponentFor(
        testConfig({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'resolv.conf' }),
        deps(),
        host,
      );
      await c!.start(new AbortController().signal);
      t.match(
        read(root, '/etc/resolv.conf'),
        /^# Added by istio-node-agent.*\nnameserver 127\.0\.0\.1\nnameserver 10\.96\.0\.10\n$/,
      );
      // dnsmasq reads the wired resolv.conf at its (re)start.
      t.same(
        await ask(ns, 'www.example.test', 'A'),
        ['192.0.2.80'],
        'other names go to the original server',
      );
      t.same(
        await ask(ns, 'istio-pilot.istio-system', 'A'),
        ['10.0.0.7'],
        'mesh names from the drop-in',
      );
      t.match(
        local.log,
        /ignoring nameserver 127\.0\.0\.1 - local interface/,
        'dnsmasq skips itself in resolv.conf',
      );
      t.notMatch(
        local.log,
        /forwarded www\.example\.test to 127\.0\.0\.1/,
        'never forwarded to itself',
      );
      t.match(local.log, /forwarded www\.example\.test to 10\.96\.0\.10/);
    },
  );
}
