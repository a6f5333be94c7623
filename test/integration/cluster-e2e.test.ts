// End to end, cluster → VM: `cluster env`, `cluster dns` and `cluster certs` against the
// kube-apiserver double (its istio.vm Secret holds a bootstrap set from our dev CA, its ILB
// Services the addresses below), then `istio-node-agent run` on exactly those files inside a
// network namespace: it gets its certificate from the dev CA at CITADEL_ADDRESS, applies the
// capture of ISTIO_SERVICE_CIDR, and writes the dnsmasq drop-in from the DNS variables, which a
// real dnsmasq then serves (forwarding svc.cluster.local to a kube-dns stand-in).
//
// In the namespace: the ILB addresses on lo; the dev CA on the Citadel ILB address; a dnsmasq as
// kube-dns on the DNS ILB address. The host's dnsmasq service is a small init script (a test
// double, named so) that `ip netns exec` mounts over /etc/init.d for the agent only
// (/etc/netns/<ns>/init.d); the host's own /etc is not changed. Test-only overrides, through the
// environment: state and drop-in directories, no resolver change (ISTIO_DNS_RESOLVER=none), no
// sidecar.
import t from 'tap';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { AgentStatus } from '../../src/agent';
import { parseEnvFile } from '../../src/config/env-file';
import { apiServer, cluster, istioSecret, putMeshExpansion, ILB_IPS } from '../helpers/cluster';
import { createNetns } from '../helpers/netns';
import { requireRoot } from '../helpers/root';

const execFileP = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'src/main.ts');
const DNSMASQ = ['/usr/sbin/dnsmasq', '/sbin/dnsmasq'].find((p) => existsSync(p));
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

/** `node src/main.ts ARGS` inside the namespace, without tap's hooks, with exactly `env`. */
function agentArgv(ns: string, env: Record<string, string>, args: string[]): string[] {
  return [
    'netns',
    'exec',
    ns,
    'env',
    '-i',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    process.execPath,
    '--import',
    'tsx',
    MAIN,
    ...args,
  ];
}

/** Resolves `name` (type A) against `server` from inside the namespace. */
async function ask(ns: string, name: string, server = '127.0.0.1'): Promise<string[] | string> {
  const script = `
    const { promises: dns } = require('node:dns');
    const r = new dns.Resolver({ timeout: 2000, tries: 2 });
    r.setServers([process.argv[1]]);
    r.resolve4(process.argv[2]).then((a) => console.log(JSON.stringify(a)), (e) => console.log(JSON.stringify(e.code)));`;
  const { stdout } = await execFileP('ip', [
    'netns',
    'exec',
    ns,
    process.execPath,
    '-e',
    script,
    server,
    name,
  ]);
  return JSON.parse(stdout) as string[] | string;
}

async function lines(
  child: ChildProcess,
  until: (l: string) => boolean,
  what: string,
): Promise<string> {
  let buf = '';
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      const l = buf.split('\n').find(until);
      if (l !== undefined) resolve(l);
    });
    child.once('exit', (c) => {
      reject(new Error(`${what} exited ${c}: ${err}`));
    });
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (c) => {
      r(c);
    }),
  );
  child.kill('SIGTERM');
  return exited;
}

if (requireRoot(t, 'the cluster → VM end-to-end test')) {
  void t.test(
    'cluster env + dns + certs → run in a namespace: certificate from the dev CA, capture, DNS',
    { skip: DNSMASQ ? false : 'dnsmasq is not installed (package dnsmasq-base)' },
    async (t) => {
      // Under /run, not /tmp: the agent will refuse configuration in a directory anyone may
      // write to, up the whole path (/tmp is 1777). Every directory here is root's, 0755.
      const work = mkdtempSync('/run/istio-node-agent-e2e-');
      chmodSync(work, 0o755);
      const ns = createNetns('e2e');
      const etcNetns = path.join('/etc/netns', ns.name);
      const procs: ChildProcess[] = [];
      const pidFiles: string[] = [];
      t.teardown(async () => {
        for (const p of procs.reverse()) await stop(p);
        for (const f of pidFiles) {
          // dnsmasq daemonizes: stop the ones this test started, by their pid files.
          const pid = existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : 0;
          if (pid > 0) {
            try {
              process.kill(pid, 'SIGTERM');
            } catch {
              /* gone */
            }
          }
        }
        ns.remove();
        rmSync(etcNetns, { recursive: true, force: true });
        rmSync(work, { recursive: true, force: true });
      });
      for (const ip of Object.values(ILB_IPS))
        await ns.run('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);

      // The dev CA, where the citadel ILB points: 10.10.0.8:8060.
      const caState = path.join(work, 'ca');
      const ca = spawn(
        'ip',
        agentArgv(ns.name, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, [
          'dev-ca',
          '--listen',
          `${ILB_IPS.citadel}:8060`,
          '--state-dir',
          caState,
          '--bootstrap-identity',
          ID,
          '--bootstrap-key',
          'ECDSA',
          '--ttl',
          '1h',
        ]),
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      procs.push(ca);
      await lines(ca, (l) => l.includes('listening on'), 'dev-ca');
      const boot = (f: string) => readFileSync(path.join(caState, 'bootstrap', f), 'utf8');

      // kube-dns for the VM, where the dns ILB points: answers svc.cluster.local names.
      const run = path.join(work, 'run');
      mkdirSync(run);
      const kubeDnsPid = path.join(run, 'kube-dns.pid');
      pidFiles.push(kubeDnsPid);
      execFileSync('ip', [
        'netns',
        'exec',
        ns.name,
        DNSMASQ!,
        `--listen-address=${ILB_IPS.dns}`,
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        `--pid-file=${kubeDnsPid}`,
        '--host-record=productpage.default.svc.cluster.local,10.1.2.3',
      ]);

      // The cluster, as 1.0's mesh expansion left it.
      const { server, kubeconfig } = await apiServer(t);
      putMeshExpansion(server);
      server.put(
        'secrets',
        istioSecret('default', 'vm', {
          certChainPem: boot('cert-chain.pem'),
          keyPem: boot('key.pem'),
          rootPem: boot('root-cert.pem'),
        }),
      );

      // Workstation: the three commands, into root-owned 0755 directories.
      const conf = path.join(work, 'envoy');
      const certs = path.join(work, 'certs');
      for (const d of [conf, certs]) mkdirSync(d, { mode: 0o755 });
      let r = await cluster(['env', '-o', conf, '--kubeconfig', kubeconfig]);
      t.equal(r.code, 0, r.err);
      const clusterEnv = readFileSync(path.join(conf, 'cluster.env'), 'utf8');
      const vars = Object.fromEntries(
        parseEnvFile(clusterEnv, 'cluster.env').map((e) => [e.key, e.value]),
      );
      t.match(vars, {
        ISTIO_SERVICE_CIDR: '10.96.0.0/12',
        CITADEL_ADDRESS: '10.10.0.8:8060',
        ISTIO_DNS_SERVER: '10.10.0.10',
        ISTIO_PILOT_IP: '10.10.0.7',
      });
      r = await cluster(['dns', '--kubeconfig', kubeconfig]);
      t.equal(r.code, 0, r.err);
      for (const line of r.out.split('\n').filter((l) => /^[A-Z_]+=/.test(l)))
        t.ok(
          clusterEnv.includes(`\n${line}\n`),
          `cluster dns gives what cluster env wrote: ${line}`,
        );
      r = await cluster(['certs', 'vm', '-o', certs, '--kubeconfig', kubeconfig]);
      t.equal(r.code, 0, r.err);

      // The "VM": the agent on those files, in the namespace; dnsmasq's service a test double.
      const dropIn = path.join(work, 'dnsmasq.d');
      mkdirSync(dropIn, { mode: 0o755 });
      const dnsmasqPid = path.join(run, 'dnsmasq.pid');
      pidFiles.push(dnsmasqPid);
      mkdirSync(path.join(etcNetns, 'init.d'), { recursive: true });
      writeFileSync(
        path.join(etcNetns, 'init.d', 'dnsmasq'),
        [
          '#!/bin/sh',
          '# TEST DOUBLE of /etc/init.d/dnsmasq: runs the real dnsmasq on 127.0.0.1 with the drop-in dir.',
          `pidf=${dnsmasqPid}`,
          'stop() { [ -s "$pidf" ] || return 0; p=$(cat "$pidf"); kill "$p" 2>/dev/null; while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; rm -f "$pidf"; }',
          'case "$1" in',
          `  start|restart) stop; exec ${DNSMASQ} --conf-dir=${dropIn} --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --pid-file="$pidf" ;;`,
          '  stop) stop ;;',
          '  status) [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" ;;',
          'esac',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      // The package's sidecar.env (a conffile; `cluster env` writes only cluster.env): empty here.
      writeFileSync(path.join(conf, 'sidecar.env'), '', { mode: 0o644 });
      const state = path.join(work, 'state');
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ISTIO_CLUSTER_CONFIG: path.join(conf, 'cluster.env'),
        ISTIO_SIDECAR_CONFIG: path.join(conf, 'sidecar.env'),
        CERTS_DIR: certs,
        ISTIO_AGENT_STATE_DIR: state,
        ISTIO_DNSMASQ_DIR: dropIn,
        ISTIO_DNS_RESOLVER: 'none',
        SIDECAR_MODE: 'none',
      };
      const agent = spawn('ip', agentArgv(ns.name, env, ['run']), {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      procs.push(agent);
      let log = '';
      agent.stdout.on('data', (b: Buffer) => (log += b.toString()));
      agent.stderr.on('data', (b: Buffer) => (log += b.toString()));
      const statusFile = path.join(state, 'status.json');
      let st: AgentStatus | undefined;
      for (let i = 0; ; i++) {
        st = existsSync(statusFile)
          ? (JSON.parse(readFileSync(statusFile, 'utf8')) as AgentStatus)
          : undefined;
        if (st?.state === 'ready') break;
        if (agent.exitCode !== null || i > 2400)
          throw new Error(`the agent did not become ready (exit ${agent.exitCode}): ${log}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      const status = await execFileP('ip', agentArgv(ns.name, env, ['status']));
      t.match(status.stdout, /^state: ready/, '`istio-node-agent status` says ready');
      t.match(status.stdout, /ok\s+certs:/);
      t.match(status.stdout, /ok\s+capture:/);
      t.match(status.stdout, /ok\s+dns:/);
      t.comment(status.stdout);

      // Its certificate came from the dev CA (not the bootstrap one), for the account's identity.
      const chain = readFileSync(path.join(certs, 'cert-chain.pem'), 'utf8');
      const leaf = new X509Certificate(chain);
      t.not(
        leaf.fingerprint256,
        new X509Certificate(boot('cert-chain.pem')).fingerprint256,
        'a newly issued certificate',
      );
      t.equal(leaf.subjectAltName, `URI:${ID}`);
      t.ok(
        leaf.verify(new X509Certificate(boot('root-cert.pem')).publicKey),
        'signed by the dev CA',
      );

      // Capture of the cluster's service range.
      const rules = ns.runSync('iptables-save', []);
      t.match(
        rules,
        /-A ISTIO_OUTPUT -d 10\.96\.0\.0\/12 -j ISTIO_REDIRECT/,
        'outbound to ISTIO_SERVICE_CIDR goes to envoy',
      );

      // DNS: the drop-in from the variables, served by dnsmasq, kube-dns behind it.
      const kubedns = readFileSync(path.join(dropIn, 'kubedns'), 'utf8');
      t.match(kubedns, /^server=\/svc\.cluster\.local\/10\.10\.0\.10$/m);
      t.same(
        await ask(ns.name, 'istio-pilot.istio-system'),
        [ILB_IPS.pilot],
        'istio-pilot.istio-system → the pilot ILB',
      );
      t.same(await ask(ns.name, 'istio-citadel'), [ILB_IPS.citadel]);
      t.same(
        await ask(ns.name, 'productpage.default.svc.cluster.local'),
        ['10.1.2.3'],
        'svc.cluster.local via kube-dns',
      );

      // A clean stop takes the capture away again.
      t.equal(await stop(agent), 0, 'SIGTERM: exit 0');
      t.notMatch(ns.runSync('iptables-save', []), /ISTIO_OUTPUT/, 'no capture left');
    },
  );
}
