import t from 'tap';
import {
  parseChanged,
  parseTemplate,
  reachVm,
  scpArgv,
  setupVm,
  shq,
  sshArgv,
  type SetupOptions,
} from '../../src/cluster/setup';
import type { Exec, ExecResult } from '../../src/lib/exec';
import { rejectsWithCode } from '../helpers/agent-error';
import { SteppingClock } from '../helpers/clock';

void t.test(
  'command templates: appended by default, placed where {placeholders} are',
  async (t) => {
    const ssh = parseTemplate('ssh  -o BatchMode=yes ');
    t.same(sshArgv(ssh, 'u@vm', 'ls -a'), ['ssh', '-o', 'BatchMode=yes', 'u@vm', 'ls -a']);
    const gcloud = parseTemplate('gcloud compute ssh {host} --zone z --command {command}');
    t.same(sshArgv(gcloud, 'vm-1', 'ls'), [
      'gcloud',
      'compute',
      'ssh',
      'vm-1',
      '--zone',
      'z',
      '--command',
      'ls',
    ]);
    const scp = parseTemplate('scp -q');
    t.same(scpArgv(scp, ['/a', '/b'], 'u@vm', 'd/'), ['scp', '-q', '/a', '/b', 'u@vm:d/']);
    const gscp = parseTemplate('gcloud compute scp {src} {host}:{dest} --zone z');
    t.same(scpArgv(gscp, ['/a', '/b'], 'vm-1', 'd/'), [
      'gcloud',
      'compute',
      'scp',
      '/a',
      '/b',
      'vm-1:d/',
      '--zone',
      'z',
    ]);
  },
);

void t.test(
  'reaching the VM: flags, else ISTIO_RUN/ISTIO_CP, else ssh/scp; sudo unless root@',
  async (t) => {
    const vm = { host: 'admin@vm-1', vm: 'vm-1' };
    t.same(reachVm(vm, {}), {
      ssh: ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15'],
      scp: ['scp', '-q', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15'],
      sudo: ['sudo', '-n'],
      remoteDir: 'istio-node-agent-vm-1',
    });
    const env = { ISTIO_RUN: 'gcloud compute ssh {host}', ISTIO_CP: 'gcloud compute scp' };
    const fromEnv = reachVm({ host: 'root@vm-1', vm: 'vm-1' }, env);
    t.same(fromEnv, {
      ssh: ['gcloud', 'compute', 'ssh', '{host}'],
      scp: ['gcloud', 'compute', 'scp'],
      sudo: [],
      remoteDir: 'istio-node-agent-vm-1',
    });
    t.same(
      reachVm({ ...vm, ssh: 'myssh -v', scp: 'mycp', sudo: 'doas', remoteDir: '/tmp/b' }, env),
      { ssh: ['myssh', '-v'], scp: ['mycp'], sudo: ['doas'], remoteDir: '/tmp/b' },
      'flags win over the environment',
    );
    t.same(
      reachVm({ ...vm, host: 'root@vm-1', sudo: 'sudo -n' }, {}),
      reachVm(vm, {}),
      '--sudo as root too',
    );
    t.same(reachVm(vm, { ISTIO_RUN: '', ISTIO_CP: '' }), reachVm(vm, {}), 'empty variables: unset');
    t.equal(reachVm({ ...vm, ssh: ' ' }, {}), '--ssh and --scp cannot be empty');
    t.equal(reachVm({ ...vm, scp: '' }, {}), '--ssh and --scp cannot be empty');
  },
);

void t.test('shell quoting for the remote command', async (t) => {
  t.equal(shq('istio-node-agent-vm/install.sh'), 'istio-node-agent-vm/install.sh');
  t.equal(shq('a b'), "'a b'");
  t.equal(shq("it's"), `'it'\\''s'`);
  t.equal(shq('$(reboot)'), "'$(reboot)'");
  t.equal(shq(''), "''");
});

void t.test("install.sh's last line: what changed", async (t) => {
  t.same(
    parseChanged(
      'placed /etc/certs/key.pem\nchanged: /var/lib/istio/envoy/cluster.env /etc/certs/key.pem\n',
    ),
    ['/var/lib/istio/envoy/cluster.env', '/etc/certs/key.pem'],
  );
  t.same(parseChanged('kept the certificates\nchanged: nothing\n'), []);
  t.equal(parseChanged('sh: 1: install.sh: not found\n'), undefined);
});

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });

/** A VM behind ssh: answers by what the command looks like; records every call. */
function fakeVm(
  o: { copyFailures?: number; changed?: string; notReadyFor?: number; installExit?: number } = {},
) {
  const calls: string[][] = [];
  let copies = 0;
  let statuses = 0;
  const exec: Exec = (cmd, args) => {
    const argv = [cmd, ...args];
    calls.push(argv);
    const last = args[args.length - 1] ?? '';
    if (cmd === 'scp') {
      copies++;
      return Promise.resolve(
        copies <= (o.copyFailures ?? 0)
          ? { code: 1, stdout: '', stderr: 'ssh: connect to host vm port 22: Connection refused' }
          : ok(),
      );
    }
    if (last.includes('install.sh'))
      return Promise.resolve(
        o.installExit
          ? { code: o.installExit, stdout: '', stderr: 'install: cannot stat' }
          : ok(`placed /etc/certs/key.pem\nchanged:${o.changed ?? ' /etc/certs/key.pem'}\n`),
      );
    if (last.includes('istio-node-agent status')) {
      statuses++;
      return Promise.resolve(
        statuses <= (o.notReadyFor ?? 0)
          ? { code: 1, stdout: 'state: starting\nFAIL certs: waiting for the CA\n', stderr: '' }
          : ok('state: ready (pid 42)\nok   certs: valid until …\n'),
      );
    }
    return Promise.resolve(ok());
  };
  return { exec, calls };
}

const OPTS: SetupOptions = {
  host: 'admin@vm-1',
  ssh: ['ssh'],
  scp: ['scp'],
  remoteDir: 'istio-node-agent-vm-1',
  sudo: ['sudo', '-n'],
  replaceCerts: false,
  startCommand: 'systemctl {action} istio-auth-node-agent',
  statusCommand: 'istio-node-agent status',
  copyAttempts: 10,
  copyDelayMs: 10_000,
  readyTimeoutMs: 60_000,
  pollMs: 5000,
};
const FILES = [
  'cluster.env',
  'sidecar.env',
  'root-cert.pem',
  'cert-chain.pem',
  'key.pem',
  'install.sh',
  'INSTALL',
];

void t.test(
  'setup: copy, place as root, clean up, restart on change, wait for ready',
  async (t) => {
    const vm = fakeVm({ notReadyFor: 2 });
    const clock = new SteppingClock();
    const lines: string[] = [];
    const r = await setupVm('/tmp/b/vm-1', FILES, OPTS, {
      exec: vm.exec,
      clock,
      progress: (l) => lines.push(l),
    });
    t.same(r.changed, ['/etc/certs/key.pem']);
    t.equal(r.action, 'restart');
    t.match(r.status, /^state: ready/);
    const remote = vm.calls.filter((c) => c[0] === 'ssh').map((c) => c[2]);
    t.same(remote, [
      'mkdir -p -m 0700 istio-node-agent-vm-1 && chmod 0700 istio-node-agent-vm-1',
      'sudo -n sh istio-node-agent-vm-1/install.sh ',
      `rm -f ${FILES.map((f) => `istio-node-agent-vm-1/${f}`).join(' ')} && rmdir istio-node-agent-vm-1`,
      'sudo -n systemctl restart istio-auth-node-agent',
      'sudo -n istio-node-agent status',
      'sudo -n istio-node-agent status',
      'sudo -n istio-node-agent status',
    ]);
    t.same(
      vm.calls.find((c) => c[0] === 'scp'),
      ['scp', ...FILES.map((f) => `/tmp/b/vm-1/${f}`), 'admin@vm-1:istio-node-agent-vm-1/'],
    );
    t.same(clock.slept, [5000, 5000]);
    t.match(lines.join('\n'), /not ready yet \(0s\): state: starting/);
  },
);

void t.test(
  'setup: nothing changed → start (a running agent is left alone); root login: no sudo',
  async (t) => {
    const vm = fakeVm({ changed: ' nothing' });
    const r = await setupVm(
      '/b',
      FILES,
      { ...OPTS, host: 'root@vm', sudo: [] },
      { exec: vm.exec, clock: new SteppingClock(), progress: () => undefined },
    );
    t.equal(r.action, 'start');
    t.same(r.changed, []);
    t.ok(vm.calls.some((c) => c[2] === 'systemctl start istio-auth-node-agent'));
  },
);

void t.test('setup: --deb, --remote-root, --replace-certs reach install.sh, quoted', async (t) => {
  const vm = fakeVm();
  await setupVm(
    '/b',
    FILES,
    {
      ...OPTS,
      deb: '/pkgs/istio-node-agent_0.1.0_amd64.deb',
      remoteRoot: '/srv/image root',
      replaceCerts: true,
      installCommand: 'dpkg -i',
    },
    { exec: vm.exec, clock: new SteppingClock(), progress: () => undefined },
  );
  const install = vm.calls.find((c) => c[2]?.includes('install.sh'))![2];
  t.equal(
    install,
    "sudo -n sh istio-node-agent-vm-1/install.sh --root '/srv/image root' --deb istio-node-agent-vm-1/istio-node-agent_0.1.0_amd64.deb --install-command 'dpkg -i' --replace-certs",
  );
  t.equal(
    vm.calls.find((c) => c[0] === 'scp')!.at(-2),
    '/pkgs/istio-node-agent_0.1.0_amd64.deb',
    'the package is copied too',
  );
});

void t.test('setup: the copy is retried as 1.0 did, then given up with ssh’s words', async (t) => {
  const vm = fakeVm({ copyFailures: 2 });
  const clock = new SteppingClock();
  const lines: string[] = [];
  const r = await setupVm('/b', FILES, OPTS, {
    exec: vm.exec,
    clock,
    progress: (l) => lines.push(l),
  });
  t.equal(r.copyAttempts, 3);
  t.same(clock.slept.slice(0, 2), [10_000, 10_000]);
  t.match(
    lines[0],
    /copy to admin@vm-1 failed \(attempt 1 of 10\): ssh: connect to host vm port 22: Connection refused; again in 10s/,
  );

  const never = fakeVm({ copyFailures: 99 });
  await rejectsWithCode(
    t,
    setupVm(
      '/b',
      FILES,
      { ...OPTS, copyAttempts: 3 },
      { exec: never.exec, clock: new SteppingClock(), progress: () => undefined },
    ),
    'AGENT_E_CLUSTER_SSH',
    /failed 3 times: ssh: connect to host vm port 22/,
  );
});

void t.test(
  'setup: a failed install still removes the copy (it holds the key), then fails',
  async (t) => {
    const vm = fakeVm({ installExit: 1 });
    await rejectsWithCode(
      t,
      setupVm('/b', FILES, OPTS, {
        exec: vm.exec,
        clock: new SteppingClock(),
        progress: () => undefined,
      }),
      'AGENT_E_CLUSTER_SSH',
      /placing the files on admin@vm-1 failed \(exit 1\): install: cannot stat/,
    );
    t.ok(
      vm.calls.some((c) => c[2]?.startsWith('rm -f ')),
      'the copy was removed',
    );
    t.notOk(
      vm.calls.some((c) => c[2]?.includes('systemctl')),
      'nothing started',
    );
  },
);

void t.test('setup: not ready in time: the last status in the error', async (t) => {
  const vm = fakeVm({ notReadyFor: 999 });
  const clock = new SteppingClock();
  await rejectsWithCode(
    t,
    setupVm(
      '/b',
      FILES,
      { ...OPTS, readyTimeoutMs: 12_000 },
      { exec: vm.exec, clock, progress: () => undefined },
    ),
    'AGENT_E_CLUSTER_VM_NOT_READY',
    /not ready after 12s; its status: state: starting \| FAIL certs: waiting for the CA; see journalctl -u istio-auth-node-agent/,
  );
  t.same(clock.slept, [5000, 5000, 2000]);
});
