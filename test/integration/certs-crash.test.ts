// Crash consistency of the whole agent: `istio-node-agent run` renewing every ~1.5 s against the
// embedded CA is killed with SIGKILL at random moments, many times; after each kill the set on
// disk must be complete and consistent, and the next start must carry on from it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { bootstrapDir, certsOnlyEnv } from '../helpers/certs';
import { tmpDir } from '../helpers/tmp';

const MAIN = path.join(__dirname, '../../src/main.ts');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const ROUNDS = 12;

t.test('kill -9 during rotations leaves a complete, consistent set every time', async (t) => {
  const ca = await startDevCa({ ttlMs: 3000 });
  t.teardown(() => ca.stop());
  const dir = bootstrapDir(t, await ca.issueBootstrap(ID, 3600_000));
  const state = tmpDir(t, 'crash-state-', { mode: 0o700 });
  const env = { ...process.env, ...certsOnlyEnv(ca.address, dir, state) };
  let approvals = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'run'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // Listened for from the start: a child that ends on its own before the kill is seen too.
    const exited = new Promise<number | null>((r) =>
      child.once('exit', (code) => {
        r(code);
      }),
    );
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((r) => (ready = r));
    let log = '';
    child.stdout.on('data', (b: Buffer) => {
      const text = b.toString();
      log = (log + text).slice(-4000);
      approvals += (text.match(/CSR is approved successfully/g) ?? []).length;
      if (text.includes('agent is ready')) ready();
    });
    // Somewhere in the first few rotations of this run, however long the start took (a loaded
    // machine takes seconds to start tsx).
    await Promise.race([isReady, exited]);
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 3000)));
    t.equal(child.exitCode, null, `round ${round}: the agent was still running when killed`, {
      // Why it ended by itself (its records are JSON lines on stdout).
      ...(child.exitCode !== null ? { log } : {}),
    });
    child.kill('SIGKILL');
    await exited;
    const key = readFileSync(path.join(dir, 'key.pem'), 'utf8');
    const chain = readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8');
    const root = readFileSync(path.join(dir, 'root-cert.pem'), 'utf8');
    const leaf = new X509Certificate(chain);
    t.ok(
      leaf.checkPrivateKey(createPrivateKey(key)),
      `round ${round}: key.pem matches cert-chain.pem`,
    );
    t.ok(
      leaf.verify(new X509Certificate(root).publicKey),
      `round ${round}: the chain verifies to root-cert.pem`,
    );
  }
  t.ok(approvals >= ROUNDS, `renewals happened between the kills (${approvals})`);
  t.ok(ca.calls.filter((c) => c.outcome === 'issued').length >= ROUNDS);
});
