// `istio-node-agent dev` as a user meets it (the bundle: `npm run build` first): the start-up
// banner says where the certificates are, how to look at them with openssl and how to run
// `status` against this dev state; the command it prints works; the files dev writes itself are
// private where they must be; after Ctrl-C `status` says not running (exit 3).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/tmp';

const BUNDLE = path.join(__dirname, '../../dist/istio-node-agent.cjs');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

void t.test('dev: the banner, status against the dev state, then not running', async (t) => {
  const dir = tmpDir(t, 'dev-banner');
  const env = { PATH: process.env.PATH, HOME: '/tmp' };
  const child = spawn(process.execPath, [BUNDLE, 'dev', '--json', '--state-dir', dir], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout.resume();
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  });
  for (let i = 0; i < 1200 && !err.includes('Ctrl-C stops it.'); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  t.match(err, 'Ctrl-C stops it.', 'the banner ends the start-up', { err });
  const certs = path.join(dir, 'certs');
  t.match(err, `Certificates: ${certs} (cert-chain.pem, key.pem, root-cert.pem)`);
  t.match(
    err,
    `openssl x509 -in ${path.join(certs, 'cert-chain.pem')} -noout -subject -serial -dates`,
  );
  t.match(err, /Monitoring: +curl -s http:\/\/127\.0\.0\.1:\d+\/metrics/, 'a free port, named');

  // The status command the banner prints, run as printed (the bundle, not an installed binary).
  const shown = /Status: +(.+)$/m.exec(err)?.[1] ?? '';
  t.match(shown, ` status --state-dir ${path.join(dir, 'agent')}`);
  const args = shown.split(' ').slice(shown.startsWith('node ') ? 2 : 1);
  const st = spawnSync(process.execPath, [BUNDLE, ...args], { env, encoding: 'utf8' });
  t.equal(st.status, 0, 'status against the dev state: running and ready', { out: st.stdout });
  t.match(st.stdout, /^state: ready \(pid \d+/m);
  t.match(st.stdout, /^ok +certs: cert valid until /m);

  // What dev writes itself: the CA's key private, through lib/atomic-write (no temporaries left).
  t.equal(statSync(path.join(dir, 'ca', 'root-key.pem')).mode & 0o777, 0o600, 'CA key 0600');
  t.equal(statSync(path.join(dir, 'ca', 'root-cert.pem')).mode & 0o777, 0o644);
  t.equal(statSync(path.join(dir, 'certs', 'key.pem')).mode & 0o077, 0, 'workload key private');

  const gone = new Promise<number | null>((r) => child.once('exit', r));
  child.kill('SIGINT');
  t.equal(await gone, 0, 'Ctrl-C: exit 0');
  const after = spawnSync(process.execPath, [BUNDLE, 'status', '--state-dir', `${dir}/agent`], {
    env,
    encoding: 'utf8',
  });
  t.equal(after.status, 3, 'stopped: status says not running, exit 3');
  t.match(after.stdout, /not running/);
});
