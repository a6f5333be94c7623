// Root-only: the sidecar's user switch (uid, gid, groups, capabilities) and the guarantee that no
// sidecar process outlives the agent, whether it is stopped (SIGTERM) or killed (SIGKILL).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { createSidecar } from '../../src/sidecar/index';
import { testConfig } from '../helpers/config';
import { testDeps, type LogRecord } from '../helpers/deps';
import { requireRoot } from '../helpers/root';
import {
  alive,
  binBase,
  CHILD_USER,
  freePort,
  killRecorded,
  openTapProcessInfo,
  records,
  waitFor,
} from '../helpers/sidecar';
import { tmpDir, type Teardown } from '../helpers/tmp';

const ROOT = path.resolve(__dirname, '../..');
const HARNESS = path.join(ROOT, 'test/helpers/sidecar-agent-main.ts');

if (requireRoot(t, 'sidecar user switch and kill tests')) {
  openTapProcessInfo();
  const [, , uidS, gidS] = execFileSync('getent', ['passwd', CHILD_USER], {
    encoding: 'utf8',
  }).split(':');
  const uid = Number(uidS);
  const gid = Number(gidS);

  /** Directories and variables for one sidecar; when `t` ends, any double still alive is killed. */
  async function setup(
    t: Teardown,
    mode: 'envoy' | 'pilot-agent',
    extra: Record<string, string> = {},
  ) {
    const port = await freePort();
    const dirs = {
      bin: binBase(t, mode === 'envoy' ? ['envoy'] : ['envoy', 'pilot-agent']),
      cfg: tmpDir(t, 'sidecar-cfg-'),
      rec: tmpDir(t, 'sidecar-rec-', { mode: 0o1777 }),
      state: tmpDir(t, 'sidecar-state-', { mode: 0o1777 }),
    };
    // Teardowns run last-in first-out: the doubles die before their directories go.
    t.teardown(() => {
      killRecorded(dirs.rec);
    });
    const vars: Record<string, string> = {
      SIDECAR_MODE: mode,
      ISTIO_BIN_BASE: dirs.bin,
      ISTIO_PROXY_CONFIG_DIR: dirs.cfg,
      ISTIO_PROXY_DRAIN_SECONDS: '1',
      ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS: '60',
      EXEC_USER: CHILD_USER,
      ENVOY_USER: CHILD_USER,
      ISTIO_SVC_IP: '10.0.0.5',
      POD_NAME: 'vm-1',
      ...(mode === 'envoy'
        ? { ISTIO_PROXY_ADMIN_PORT: String(port) }
        : { ISTIO_AGENT_FLAGS: `--proxyAdminPort ${port}` }),
      ...extra,
    };
    const fakes = {
      FAKE_ENVOY_STATE_DIR: dirs.state,
      FAKE_ENVOY_RECORD_DIR: dirs.rec,
      FAKE_PILOT_AGENT_RECORD_DIR: dirs.rec,
      FAKE_PILOT_AGENT_CONFIG_DIR: dirs.state,
    };
    return { vars, fakes, dirs, port };
  }

  void t.test(
    'TPROXY: the child keeps CAP_NET_ADMIN as an ambient capability, still not root',
    async (t) => {
      const s = await setup(t, 'envoy', { ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY' });
      const sc = createSidecar(testConfig(s.vars), testDeps({ throwOnFatal: true }), {
        processEnv: { PATH: process.env.PATH, ...s.fakes },
      });
      await sc.start(new AbortController().signal);
      const [rec] = records(s.dirs.rec);
      const boot = JSON.parse(readFileSync(path.join(s.dirs.cfg, 'envoy-rev0.json'), 'utf8'));
      await sc.stop();
      t.equal(rec!.uid, uid);
      t.equal(rec!.capAmb, '0000000000001000', 'CAP_NET_ADMIN (bit 12) only');
      t.equal(
        boot.node.metadata.INTERCEPTION_MODE,
        'TPROXY',
        'Pilot is told to build TPROXY listeners',
      );
    },
  );

  void t.test(
    'a bootstrap directory EXEC_USER cannot read is a clear error, not a crash loop',
    async (t) => {
      const s = await setup(t, 'envoy');
      chmodSync(s.dirs.cfg, 0o700);
      const sc = createSidecar(testConfig(s.vars), testDeps({ throwOnFatal: true }), {
        processEnv: { PATH: process.env.PATH, ...s.fakes },
      });
      await t.rejects(sc.start(new AbortController().signal), {
        code: 'AGENT_E_SIDECAR_BOOTSTRAP',
        message: new RegExp(
          `cannot read .*envoy-rev0\\.json: ${s.dirs.cfg} \\(mode 0700, owner 0:0\\)`,
        ),
      });
      t.same(records(s.dirs.rec), [], 'envoy was not started');
    },
  );

  void t.test(
    'pilot-agent mode: pilot-agent and its envoy as EXEC_USER, in their own PID namespace',
    async (t) => {
      const s = await setup(t, 'pilot-agent');
      const sc = createSidecar(testConfig(s.vars), testDeps({ throwOnFatal: true }), {
        processEnv: { PATH: process.env.PATH, ...s.fakes },
      });
      await sc.start(new AbortController().signal);
      const recs = records(s.dirs.rec);
      await sc.stop();
      t.same(recs.map((r) => r.program).sort(), ['envoy', 'pilot-agent']);
      for (const r of recs) {
        t.equal(r.uid, uid, `${r.program} uid`);
        t.equal(r.gid, gid, `${r.program} gid`);
        t.equal(
          r.nsPid?.trim().split(/\s+/).length,
          2,
          `${r.program} is in a child PID namespace (NSpid ${r.nsPid})`,
        );
      }
      t.same(
        recs.filter((r) => alive(r.pid)),
        [],
      );
    },
  );

  interface Harness {
    readonly child: ChildProcess;
    readonly exited: Promise<number | null>;
    /** The agent's log records (one JSON line each on its stderr) whose message matches. */
    logged(msg: RegExp): LogRecord[];
  }

  /** The agent in its own process (test/helpers/sidecar-agent-main.ts), killed when `t` ends. */
  async function startHarness(
    t: Teardown,
    vars: Record<string, string>,
    fakes: Record<string, string>,
    prefix: string[] = [],
  ): Promise<Harness> {
    const argv = [...prefix, process.execPath, '--import', 'tsx', HARNESS];
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        ISTIO_CLUSTER_CONFIG: '/dev/null',
        ISTIO_SIDECAR_CONFIG: '/dev/null',
        ...vars,
        ...fakes,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        resolve(code);
      }),
    );
    t.teardown(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        reject(new Error(`harness not ready in 30 s:\n${err}`));
      }, 30_000);
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('"harness":"ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`harness exited ${code}:\n${err}`));
      });
    });
    const logged = (msg: RegExp): LogRecord[] =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogRecord)
        .filter((r) => msg.test(r.msg));
    return { child, exited, logged };
  }

  void t.test(
    'the child runs with EXEC_USER uid and gid, no supplementary groups, no capabilities',
    async (t) => {
      const s = await setup(t, 'envoy', { ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS: '1' });
      // The agent itself has supplementary groups (adm, dialout), which a child would inherit.
      const h = await startHarness(t, s.vars, s.fakes, [
        '/usr/bin/setpriv',
        '--groups',
        '4,20',
        '--',
      ]);
      const agentGroups = /^Groups:[ \t]*(.*)$/m
        .exec(readFileSync(`/proc/${h.child.pid}/status`, 'utf8'))?.[1]
        ?.trim();
      t.equal(agentGroups, '4 20', 'the agent runs with supplementary groups');
      const [rec] = records(s.dirs.rec);
      h.child.kill('SIGTERM');
      t.equal(await h.exited, 0);
      t.equal(rec!.uid, uid);
      t.equal(rec!.gid, gid);
      t.equal(rec!.uidLine, `${uid}\t${uid}\t${uid}\t${uid}`, 'real, effective, saved and fs uid');
      t.equal(rec!.gidLine, `${gid}\t${gid}\t${gid}\t${gid}`, 'real, effective, saved and fs gid');
      t.equal(rec!.groups, '', 'supplementary groups cleared');
      t.equal((rec as unknown as { capEff: string }).capEff, '0000000000000000', 'no capabilities');
      const home = execFileSync('getent', ['passwd', CHILD_USER], { encoding: 'utf8' }).split(
        ':',
      )[5];
      t.equal(rec!.env.HOME, home, "HOME is the user's, as su set it");
    },
  );

  void t.test('SIGKILL of the agent during a hot restart leaves no envoy epoch', async (t) => {
    const s = await setup(t, 'envoy');
    const h = await startHarness(t, s.vars, s.fakes);
    h.child.kill('SIGUSR2'); // rotation: epoch 1 starts, epoch 0 drains for 60 s
    await waitFor(
      'two epochs running',
      () => records(s.dirs.rec).filter((r) => alive(r.pid)).length === 2,
    );
    const pids = records(s.dirs.rec).map((r) => r.pid);
    t.same(
      records(s.dirs.rec).map((r) => r.epoch),
      [0, 1],
    );
    h.child.kill('SIGKILL');
    await h.exited;
    await waitFor('no envoy left', () => pids.every((p) => !alive(p)), { timeoutMs: 5000 });
    t.pass(`epochs ${pids.join(', ')} died with the agent`);
  });

  void t.test(
    'SIGKILL of the agent leaves neither pilot-agent nor the envoy it started',
    async (t) => {
      const s = await setup(t, 'pilot-agent');
      const h = await startHarness(t, s.vars, s.fakes);
      await waitFor('pilot-agent and envoy recorded', () => records(s.dirs.rec).length === 2);
      const recs = records(s.dirs.rec);
      t.ok(
        recs.every((r) => alive(r.pid)),
        'both running before the kill',
      );
      h.child.kill('SIGKILL');
      await h.exited;
      await waitFor('no sidecar process left', () => recs.every((r) => !alive(r.pid)), {
        timeoutMs: 5000,
      });
      t.pass(`${recs.map((r) => `${r.program} ${r.pid}`).join(', ')} died with the agent`);
    },
  );

  void t.test(
    'an agent not running as root: the child runs as the agent user and still dies with it',
    async (t) => {
      const s = await setup(t, 'envoy');
      // The agent as `nobody` (dev and test use): no user switch, setpriv --pdeathsig only.
      const vars = {
        ...s.vars,
        EXEC_USER: 'istio-proxy',
        ISTIO_PROXY_CONFIG_DIR: path.join(s.dirs.state, 'proxy'),
      };
      const h = await startHarness(t, vars, s.fakes, [
        '/usr/bin/setpriv',
        '--reuid',
        CHILD_USER,
        '--regid',
        String(gid),
        '--clear-groups',
        '--',
      ]);
      h.child.kill('SIGUSR2');
      await waitFor(
        'two epochs running',
        () => records(s.dirs.rec).filter((r) => alive(r.pid)).length === 2,
      );
      const recs = records(s.dirs.rec);
      t.same(
        recs.map((r) => r.uid),
        [uid, uid],
        'envoy runs as the agent user',
      );
      t.ok(
        h
          .logged(/not running as root: the sidecar runs as nobody, not EXEC_USER=istio-proxy/)
          .some((r) => r.level === 'warn'),
        'a warning says who the sidecar runs as',
      );
      h.child.kill('SIGKILL');
      await h.exited;
      await waitFor('no envoy left', () => recs.every((r) => !alive(r.pid)), { timeoutMs: 5000 });
      t.pass('both epochs died with the non-root agent');
    },
  );

  void t.test('SIGTERM of the agent: drained, stopped, exit 0, nothing left', async (t) => {
    for (const mode of ['envoy', 'pilot-agent'] as const) {
      const s = await setup(t, mode, { ISTIO_PROXY_PARENT_SHUTDOWN_SECONDS: '1' });
      const h = await startHarness(t, s.vars, s.fakes);
      await waitFor('recorded', () => records(s.dirs.rec).length === (mode === 'envoy' ? 1 : 2));
      const recs = records(s.dirs.rec);
      h.child.kill('SIGTERM');
      t.equal(await h.exited, 0, `${mode}: the agent exits 0`);
      t.same(
        recs.filter((r) => alive(r.pid)).map((r) => r.program),
        [],
        `${mode}: nothing left when the agent has exited`,
      );
      t.ok(
        h.logged(/health check failed by admin request/).length > 0,
        `${mode}: drained before stopping`,
      );
    }
  });
}
