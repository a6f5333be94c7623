// The bundle carries the CA protocol (protos, grpc-js, x509) with it: build it, copy the one file
// to a directory with no node_modules, and serve and sign with it.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { createCaClient } from '../../src/ca/index';
import { makeCsr } from '../helpers/csr';
import { tmpDir } from '../helpers/tmp';

const ROOT_DIR = path.resolve(__dirname, '../..');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

void t.test('the build (scripts/build.mjs), then dev-ca from the bundle alone', async (t) => {
  // Built into a directory of its own, as `npm run build` builds dist/: other test files run
  // dist/istio-node-agent.cjs meanwhile (tap runs two at once), and rewriting it under them made
  // one of them load a half-written bundle.
  const dir = tmpDir(t, 'ca-bundle-', { mode: 0o700 });
  const build = spawnSync(process.execPath, ['scripts/build.mjs', dir], {
    cwd: ROOT_DIR,
    encoding: 'utf8',
  });
  t.equal(build.status, 0, `scripts/build.mjs: ${build.stderr}`);
  const bundle = path.join(dir, 'istio-node-agent.cjs');
  t.notOk(existsSync(path.join(dir, 'node_modules')), 'no node_modules beside it');

  const help = spawnSync(process.execPath, [bundle, 'dev-ca', '--help'], {
    cwd: dir,
    encoding: 'utf8',
  });
  t.equal(help.status, 0, help.stderr);
  t.match(help.stdout, /^Usage: istio-node-agent dev-ca/);
  const top = spawnSync(process.execPath, [bundle, '--help'], { cwd: dir, encoding: 'utf8' });
  t.match(top.stdout, /dev-ca\s+serve the embedded Citadel-compatible CA/);

  const child = spawn(
    process.execPath,
    [
      bundle,
      'dev-ca',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      path.join(dir, 'state'),
      '--bootstrap-identity',
      ID,
      '--bootstrap-key',
      'ECDSA',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (c) => {
      r(c);
    }),
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    void exited.then((c) => {
      reject(new Error(`exited ${c}: ${err}`));
    });
  });
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
  t.ok(port > 0, line);
  const boot = path.join(dir, 'state', 'bootstrap');
  for (const api of ['HandleCSR', 'CreateCertificate'] as const) {
    const csr = await makeCsr(ID);
    const c = createCaClient({
      address: `127.0.0.1:${port}`,
      serverName: 'istio-citadel',
      rootPem: readFileSync(path.join(boot, 'root-cert.pem'), 'utf8'),
      api,
      timeoutMs: 5000,
      credential: {
        kind: 'mtls',
        certChainPem: readFileSync(path.join(boot, 'cert-chain.pem'), 'utf8'),
        keyPem: readFileSync(path.join(boot, 'key.pem'), 'utf8'),
      },
    });
    const chain = await c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: 600_000 });
    c.close();
    t.ok(chain.length >= 1, `${api} served by the bundle`);
  }
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
