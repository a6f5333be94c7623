// `cluster setup` against a real OpenSSH server (Debian's openssh-server) in a network namespace:
// the bundle copied with the real ssh and scp, placed by install.sh as root into a temporary root
// (this host stands in for the VM; its own /etc and /var are not touched), the copy retried and
// removed, then the start and status commands. The unit and `istio-node-agent status` of a real
// VM are stood in for by two small scripts (a booted VM is the system tier's job).
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { apiServer, cluster, istioSecret, putMeshExpansion } from '../helpers/cluster';
import { createNetns } from '../helpers/netns';
import { tmpDir } from '../helpers/tmp';
import { requireRoot } from '../helpers/root';

const SSHD = '/usr/sbin/sshd';
const PORT = 2222;
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

if (requireRoot(t, 'the sshd setup test')) {
  void t.test(
    'setup over real ssh/scp: copy (retried), place as root, clean up, restart, wait; again: nothing changes',
    { skip: existsSync(SSHD) ? false : `${SSHD} is missing (apt-get install openssh-server)` },
    async (t) => {
      const dir = tmpDir(t, 'cluster-setup-', { mode: 0o700 });
      chmodSync(dir, 0o755);
      const ns = createNetns('ssh');
      t.teardown(() => {
        ns.remove();
      });

      // sshd: its own host key, root logs in with a key, nothing else.
      const key = (name: string) => {
        const r = spawnSync('ssh-keygen', [
          '-q',
          '-t',
          'ed25519',
          '-N',
          '',
          '-f',
          path.join(dir, name),
        ]);
        if (r.status !== 0) throw new Error(`ssh-keygen: ${String(r.stderr)}`);
      };
      key('host_key');
      key('client_key');
      writeFileSync(
        path.join(dir, 'authorized_keys'),
        readFileSync(path.join(dir, 'client_key.pub')),
        { mode: 0o600 },
      );
      writeFileSync(
        path.join(dir, 'sshd_config'),
        [
          `Port ${PORT}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${path.join(dir, 'host_key')}`,
          `PidFile ${path.join(dir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
          'PermitRootLogin prohibit-password',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'Subsystem sftp internal-sftp',
          '',
        ].join('\n'),
      );
      // sshd's privilege-separation directory (the Debian unit makes it at start).
      if (!existsSync('/run/sshd')) {
        mkdirSync('/run/sshd', { mode: 0o755 });
        t.teardown(() => {
          rmdirSync('/run/sshd');
        });
      }
      let log = '';
      const sshd: ChildProcess = spawn(
        'ip',
        ['netns', 'exec', ns.name, SSHD, '-D', '-e', '-f', path.join(dir, 'sshd_config')],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      sshd.stderr!.on('data', (b: Buffer) => (log += b.toString()));
      t.teardown(async () => {
        if (sshd.exitCode !== null) return;
        const gone = new Promise((r) => sshd.once('exit', r));
        sshd.kill('SIGTERM');
        await gone;
      });
      const opts = `-i ${path.join(dir, 'client_key')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR`;
      const ssh = `ip netns exec ${ns.name} ssh -p ${PORT} ${opts}`;
      const scp = `ip netns exec ${ns.name} scp -q -P ${PORT} ${opts}`;
      for (let i = 0; ; i++) {
        if (log.includes('Server listening')) break;
        if (sshd.exitCode !== null || i > 400) throw new Error(`sshd did not start: ${log}`);
        await new Promise((r) => setTimeout(r, 25));
      }

      // The "VM": files go under root/, the unit and `status` are scripts that record what they did.
      const vm = path.join(dir, 'vm');
      const root = path.join(vm, 'root');
      mkdirSync(root, { recursive: true });
      const script = (name: string, body: string): string => {
        const p = path.join(vm, name);
        writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
        return p;
      };
      const start = script('start.sh', `echo "$1" >> ${vm}/actions; : > ${vm}/started`);
      const status = script(
        'status.sh',
        `n=$(cat ${vm}/status-calls 2>/dev/null || echo 0); echo $((n + 1)) > ${vm}/status-calls\n` +
          `if [ -e ${vm}/started ] && [ "$n" -ge 1 ]; then echo 'state: ready (pid 4242)'; echo 'ok   certs: valid'; exit 0; fi\n` +
          `echo 'state: starting'; echo 'FAIL certs: no certificate yet'; exit 1`,
      );
      const install = script('install-deb.sh', `cp "$1" ${vm}/installed.deb; echo installed "$1"`);
      // scp that fails twice (a VM still booting), then copies.
      const flaky = script(
        'flaky-scp.sh',
        `n=$(cat ${vm}/scp-calls 2>/dev/null || echo 0); echo $((n + 1)) > ${vm}/scp-calls\n` +
          `if [ "$n" -lt 2 ]; then echo "ssh: connect to host 127.0.0.1 port ${PORT}: Connection refused" >&2; exit 1; fi\n` +
          `exec ${scp} "$@"`,
      );
      const deb = path.join(dir, 'istio-node-agent_0.1.0_amd64.deb');
      writeFileSync(deb, 'not really a package\n');

      // The cluster.
      const ca = await startDevCa({ ttlMs: 3600_000 });
      t.teardown(() => ca.stop());
      const { server, kubeconfig } = await apiServer(t);
      putMeshExpansion(server);
      server.put(
        'secrets',
        istioSecret('default', 'vm', await ca.issueBootstrap(ID, 24 * 3600_000, 'ECDSA')),
      );

      const staging = path.join(vm, 'staging');
      const common = [
        'vm-1',
        '--host',
        'root@127.0.0.1',
        '--kubeconfig',
        kubeconfig,
        '-s',
        'vm',
        '--ports',
        '8080',
        '--remote-dir',
        staging,
        '--remote-root',
        root,
        '--start-command',
        `sh ${start} {action}`,
        '--status-command',
        `sh ${status}`,
        '--copy-delay',
        '100ms',
        '--poll',
        '100ms',
      ];
      let r = await cluster([
        'setup',
        ...common,
        '--ssh',
        ssh,
        '--scp',
        `sh ${flaky}`,
        '--deb',
        deb,
        '--install-command',
        `sh ${install}`,
      ]);
      t.equal(r.code, 0, r.err);
      t.match(
        r.err,
        /copy to root@127\.0\.0\.1 failed \(attempt 1 of 10\): ssh: connect to host 127\.0\.0\.1 port 2222: Connection refused; again in 0\.1s/,
      );
      t.match(r.err, /attempt 2 of 10/);
      t.match(r.err, /copied 8 files to root@127\.0\.0\.1:.*staging \(attempt 3\)/);
      t.match(r.err, /root@127\.0\.0\.1: installed .*istio-node-agent_0\.1\.0_amd64\.deb/);
      t.match(r.err, /not ready yet .*: state: starting/);
      t.match(
        r.out,
        /^vm-1 \(root@127\.0\.0\.1\): changed package \/var\/lib\/istio\/envoy\/cluster\.env .*\/etc\/certs\/key\.pem; agent restarted; ready\nstate: ready \(pid 4242\)\n/,
      );
      t.equal(
        readFileSync(path.join(vm, 'installed.deb'), 'utf8'),
        'not really a package\n',
        'the package went over and was installed',
      );
      t.equal(readFileSync(path.join(vm, 'actions'), 'utf8'), 'restart\n');
      t.notOk(existsSync(staging), 'the copy (with the key) is removed from the VM');
      for (const [p, mode] of [
        ['var/lib/istio/envoy', 0o755],
        ['etc/certs', 0o755],
        ['var/lib/istio/envoy/cluster.env', 0o644],
        ['var/lib/istio/envoy/sidecar.env', 0o644],
        ['etc/certs/root-cert.pem', 0o644],
        ['etc/certs/cert-chain.pem', 0o644],
        ['etc/certs/key.pem', 0o600],
      ] as const) {
        const st = statSync(path.join(root, p));
        t.same(
          [st.uid, st.gid, st.mode & 0o7777],
          [0, 0, mode],
          `${p}: root:root ${mode.toString(8)}`,
        );
      }
      t.match(
        readFileSync(path.join(root, 'var/lib/istio/envoy/sidecar.env'), 'utf8'),
        /^ISTIO_INBOUND_PORTS=8080$/m,
      );
      t.equal(readFileSync(path.join(root, 'etc/certs/root-cert.pem'), 'utf8'), ca.rootPem);

      // Again, with 1.0's ISTIO_RUN/ISTIO_CP instead of the flags: nothing changes, a start only.
      r = await cluster(['setup', ...common], { ISTIO_RUN: ssh, ISTIO_CP: scp });
      t.equal(r.code, 0, r.err);
      t.match(r.out, /^vm-1 \(root@127\.0\.0\.1\): nothing changed; agent started; ready\n/);
      t.equal(readFileSync(path.join(vm, 'actions'), 'utf8'), 'restart\nstart\n');
      t.same(
        readdirSync(vm).filter((f) => f === 'staging'),
        [],
      );

      // A VM that never gets ready: the last status in the error.
      writeFileSync(
        status,
        "#!/bin/sh\necho 'state: starting'; echo 'FAIL ca: istio-citadel:8060 unreachable'; exit 1\n",
      );
      r = await cluster(['setup', ...common, '--ready-timeout', '300ms'], {
        ISTIO_RUN: ssh,
        ISTIO_CP: scp,
      });
      t.equal(r.code, 1);
      t.match(
        r.err,
        /the agent on root@127\.0\.0\.1 is not ready after 0\.3s; its status: state: starting \| FAIL ca: istio-citadel:8060 unreachable; see journalctl -u istio-auth-node-agent on the VM \[AGENT_E_CLUSTER_VM_NOT_READY\]/,
      );

      // A host that is not there: every attempt fails, ssh's words in the error.
      r = await cluster([
        'setup',
        ...common,
        '--copy-attempts',
        '2',
        '--ssh',
        ssh.replace(`-p ${PORT}`, '-p 2223'),
        '--scp',
        scp,
      ]);
      t.equal(r.code, 1);
      t.match(
        r.err,
        /copying the bundle to root@127\.0\.0\.1:.* failed 2 times: .*Connection refused.*\[AGENT_E_CLUSTER_SSH\]/,
      );
    },
  );
}
