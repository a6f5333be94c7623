// `istio-node-agent check` as a user runs it: the CLI from source, a real CA on loopback.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { bootstrapDir } from '../helpers/certs';
import { tmpDir } from '../helpers/tmp';

const MAIN = path.join(__dirname, '../../src/main.ts');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

interface Run {
  code: number;
  results: { name: string; ok: boolean; skipped?: boolean; detail: string }[];
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process, which hosts the CA. */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        let results: Run['results'] = [];
        try {
          results = JSON.parse(stdout) as Run['results'];
        } catch {
          results = [];
        }
        resolve({ code, results, stdout, stderr });
      },
    );
  });
}

const check = (env: Record<string, string>): Promise<Run> => cli(['check', '--json'], env);

t.test('check reports each part and fails on what is wrong', async (t) => {
  const ca = await startDevCa({ ttlMs: 3600_000 });
  t.teardown(() => ca.stop());
  const boot = await ca.issueBootstrap(ID, 3600_000);
  const certs = bootstrapDir(t, boot);
  const work = tmpDir(t, 'check-', { mode: 0o700 });
  const cluster = path.join(work, 'cluster.env');
  writeFileSync(
    cluster,
    `CITADEL_ADDRESS=${ca.address}\nCERTS_DIR=${certs}\nISTIO_CAPTURE=false\nSIDECAR_MODE=none\nISTIO_AGENT_STATE_DIR=${work}/state\n`,
  );
  const env = { ISTIO_CLUSTER_CONFIG: cluster, ISTIO_SIDECAR_CONFIG: path.join(work, 'none.env') };

  const good = await check(env);
  const by = (name: string) => good.results.find((r) => r.name === name)!;
  t.equal(
    good.code,
    0,
    `every check passes: ${good.results
      .filter((r) => !r.ok)
      .map((r) => `${r.name}: ${r.detail}`)
      .join('; ')}${good.stderr}`,
  );
  t.ok(by('certificates').ok);
  t.match(
    by('certificates').detail,
    /bootstrap set: spiffe:\/\/cluster\.local\/ns\/default\/sa\/vm, valid until/,
  );
  t.ok(by('ca').ok);
  t.match(by('ca').detail, /TLS handshake OK as istio-citadel/);
  t.ok(by('capture').skipped);

  // A key that does not match the certificate.
  const other = await ca.issueBootstrap(ID, 3600_000);
  writeFileSync(path.join(certs, 'key.pem'), other.keyPem);
  const badKey = await check(env);
  t.equal(badKey.code, 1);
  t.match(badKey.results.find((r) => r.name === 'certificates')!.detail, /key\.pem does not match/);
  writeFileSync(path.join(certs, 'key.pem'), boot.keyPem);

  // The CA away.
  await ca.stop();
  const noCa = await check(env);
  t.equal(noCa.code, 1);
  t.match(noCa.results.find((r) => r.name === 'ca')!.detail, /ECONNREFUSED/);

  // An invalid configuration: exit 78, naming file, line and variable.
  writeFileSync(cluster, readFileSync(cluster, 'utf8') + 'ENVOY_PORT=0\n');
  const r = await cli(['check'], env);
  t.equal(r.code, 78);
  t.match(r.stderr, new RegExp(`${cluster.replace(/[/.]/g, '\\$&')}:6: ENVOY_PORT`));
});
