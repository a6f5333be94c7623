// One lock in the state directory (issue 9, item 9): a second daemon (`run` or `dev`) on the same
// state directory refuses to start, naming the one that runs (they used to run side by side).
// The concurrent `iptables apply` half is lock-iptables.test.ts.
import t, { type Test } from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { bootstrapDir, certsOnlyEnv } from '../helpers/certs';
import { tmpDir } from '../helpers/tmp';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts a daemon and resolves once it logged `marker`; the caller stops it. */
async function startDaemon(
  t: Test,
  args: string[],
  env: NodeJS.ProcessEnv,
  marker: string,
): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [BUNDLE, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  });
  for (let i = 0; i < 1200 && !out.includes(marker); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!out.includes(marker)) throw new Error(`daemon did not log "${marker}": ${out}`);
  return { child, out: () => out };
}

function runOnce(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BUNDLE, ...args],
      { env, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

async function stop(child: ChildProcess): Promise<number | null> {
  const gone = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      r(code);
    }),
  );
  child.kill('SIGTERM');
  return gone;
}

t.test('a second dev on the same state directory refuses to start', async (t) => {
  const dir = tmpDir(t, 'lock-dev-', { mode: 0o700 });
  const env = { PATH: process.env.PATH, HOME: '/tmp' };
  const first = await startDaemon(t, ['dev', '--json', '--state-dir', dir], env, 'agent is ready');
  const second = await runOnce(['dev', '--json', '--state-dir', dir], env);
  t.equal(second.code, 1, 'the second dev exits 1');
  t.match(second.stderr, '[AGENT_E_ALREADY_RUNNING]', 'with the documented code');
  t.match(second.stderr, `pid ${first.child.pid}`, 'naming the pid of the running one');
  t.equal(await stop(first.child), 0, 'the first one is unharmed and stops cleanly');
  const third = await startDaemon(t, ['dev', '--json', '--state-dir', dir], env, 'agent is ready');
  t.pass('once it stopped, a new dev starts');
  t.equal(await stop(third.child), 0);
});

t.test('a second run on the same state directory refuses to start', async (t) => {
  const ca = await startDevCa({ ttlMs: 3600_000 });
  t.teardown(() => ca.stop());
  const certs = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
  const state = tmpDir(t, 'lock-run-', { mode: 0o700 });
  const env = certsOnlyEnv(ca.address, certs, state);
  const first = await startDaemon(t, ['run'], env, 'agent is ready');
  const second = await runOnce(['run'], env);
  t.equal(second.code, 1, 'the second run exits 1');
  t.match(second.stdout + second.stderr, 'AGENT_E_ALREADY_RUNNING');
  t.match(second.stdout + second.stderr, `pid ${first.child.pid}`);
  t.equal(await stop(first.child), 0, 'the first one stops cleanly');
});
