// `istio-node-agent run` ends its process once it is done, even when something left a handle
// open (issue 9, item 7): a hung HTTP request opened inside the agent's process must not keep it
// alive after SIGTERM and the cleanup.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { bootstrapDir, certsOnlyEnv } from '../helpers/certs';
import { tmpDir } from '../helpers/tmp';
import { exitWithin } from '../helpers/exit-within';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');
const PRELOAD = path.join(__dirname, '../doubles/leftover-handle.cjs');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';
/** A hang detector, not a performance claim: cleanup of a certs-only agent takes well under it. */
const EXIT_BOUND_MS = 30_000;

t.test('run exits after SIGTERM although a hung request is still open', async (t) => {
  const sockets: Socket[] = [];
  const hang = createServer((s) => {
    sockets.push(s); // accepted, never answered
  });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    hang.close();
  });
  const port = (hang.address() as { port: number }).port;
  const ca = await startDevCa({ ttlMs: 3600_000 });
  t.teardown(() => ca.stop());
  const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
  const state = tmpDir(t, 'run-exit-', { mode: 0o700 });
  const child = spawn(process.execPath, ['--require', PRELOAD, BUNDLE, 'run'], {
    env: { ...certsOnlyEnv(ca.address, dir, state), LEFTOVER_HANDLE_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      r(code);
    }),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  for (let i = 0; i < 600 && !out.includes('agent is ready'); i++)
    await new Promise((r) => setTimeout(r, 50));
  t.match(out, 'agent is ready', 'the agent started');
  t.ok(sockets.length > 0 || (await waitFor(() => sockets.length > 0)), 'the hung request is open');
  child.kill('SIGTERM');
  const code = await exitWithin(exited, EXIT_BOUND_MS);
  t.equal(code, 0, 'exit 0 after SIGTERM, not kept alive by the open request');
  t.match(out, '"msg":"stopping"', 'it logged the stop');
});

async function waitFor(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  return cond();
}
