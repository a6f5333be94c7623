// `istio-node-agent check` as a user runs it: the CLI from source, a real CA on loopback.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../../src/ca/index';
import { bootstrapDir } from '../helpers/certs';
import { tmpDir } from '../helpers/tmp';

const MAIN = path.join(__dirname, '../../src/main.ts');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

interface Run {
  code: number;
  results: { name: string; ok: boolean; skipped?: boolean; detail: string; code?: string }[];
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
  const work = tmpDir(t, 'check', { mode: 0o700 });
  const cluster = path.join(work, 'cluster.env');
  const base = `CITADEL_ADDRESS=${ca.address}\nCITADEL_ENV=onprem\nCERTS_DIR=${certs}\nISTIO_CAPTURE=false\nSIDECAR_MODE=none\nISTIO_AGENT_STATE_DIR=${work}/state\n`;
  writeFileSync(cluster, base);
  const env = { ISTIO_CLUSTER_CONFIG: cluster, ISTIO_SIDECAR_CONFIG: '/dev/null' };

  const good = await check(env);
  const by = (r: Run, name: string) => r.results.find((x) => x.name === name)!;
  t.equal(
    good.code,
    0,
    `every check passes: ${good.results
      .filter((r) => !r.ok)
      .map((r) => `${r.name}: ${r.detail}`)
      .join('; ')}${good.stderr}`,
  );
  t.ok(by(good, 'config').ok);
  t.ok(by(good, 'certs').ok);
  t.match(
    by(good, 'certs').detail,
    /bootstrap set: spiffe:\/\/cluster\.local\/ns\/default\/sa\/vm, serial [0-9A-F]+, valid until \S+ \((59 minutes|60 minutes|1 hour)? ?left\)|left\)/,
  );
  t.notMatch(by(good, 'certs').detail, /\d+h\d+m[\d.]+s/, 'no Go durations');
  t.ok(by(good, 'ca').ok);
  t.match(by(good, 'ca').detail, /TLS handshake OK as istio-citadel/);
  t.ok(by(good, 'capture').skipped);

  // A key that does not match the certificate.
  const other = await ca.issueBootstrap(ID, 3600_000);
  writeFileSync(path.join(certs, 'key.pem'), other.keyPem);
  const badKey = await check(env);
  t.equal(badKey.code, 78, 'a bad bootstrap set is a configuration error, as for run');
  t.match(by(badKey, 'certs').detail, /key\.pem does not match/);
  t.equal(by(badKey, 'certs').code, 'AGENT_E_BOOTSTRAP_INVALID', 'the failure carries its code');
  writeFileSync(path.join(certs, 'key.pem'), boot.keyPem);

  // The CA away.
  await ca.stop();
  const noCa = await check(env);
  t.equal(noCa.code, 1);
  t.match(by(noCa, 'ca').detail, /ECONNREFUSED|connection refused/);
  t.ok(by(noCa, 'ca').code, 'with its code');

  // Invalid values: exit 78, every problem with its file, line, variable and code.
  writeFileSync(cluster, base + 'ENVOY_PORT=0\nCITADEL_ENV=moon\n');
  const r = await cli(['check'], env);
  t.equal(r.code, 78);
  t.match(
    r.stdout,
    new RegExp(
      `FAIL config +${cluster.replace(/[/.]/g, '\\$&')}:7: ENVOY_PORT: .*\\[AGENT_E_CONFIG_VALUE\\]`,
    ),
  );
  t.match(r.stdout, new RegExp(`${cluster.replace(/[/.]/g, '\\$&')}:8: CITADEL_ENV`));
});

t.test("check runs run's validation: what run refuses, check fails, with its code", async (t) => {
  const work = tmpDir(t, 'check-run');
  const cluster = path.join(work, 'cluster.env');
  writeFileSync(
    cluster,
    `CITADEL_ENV=onprem\nCERTS_DIR=${work}/certs\nISTIO_AGENT_STATE_DIR=${work}/state\nSIDECAR_MODE=none\nENVOY_USER=nosuchuser\n`,
  );
  const env = { ISTIO_CLUSTER_CONFIG: cluster, ISTIO_SIDECAR_CONFIG: '/dev/null' };
  const r = await check(env);
  const capture = r.results.find((x) => x.name === 'capture')!;
  t.equal(capture.ok, false, `capture fails: ${capture.detail}`);
  t.equal(capture.code, 'AGENT_E_USER_UNKNOWN');
  t.match(capture.detail, /nosuchuser/);
  t.equal(r.code, 78, 'exits as run would');
  const run = await cli(['run'], env);
  t.equal(run.code, 78, 'run refuses it too');
  t.match(run.stdout + run.stderr, /AGENT_E_USER_UNKNOWN/);

  // A named sidecar.env that does not exist: a failure, not "ok config".
  const missing = await check({ ...env, ISTIO_SIDECAR_CONFIG: path.join(work, 'sidecar.env') });
  t.equal(missing.code, 78);
  const config = missing.results.find((x) => x.name === 'config')!;
  t.equal(config.ok, false);
  t.equal(config.code, 'AGENT_E_CONFIG_READ');
  t.match(config.detail, /sidecar\.env does not exist/);
});
