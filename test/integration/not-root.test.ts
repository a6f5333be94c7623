// Permission problems say what to do (issue 11): `run` as a user other than root, through the
// real CLI under setpriv (uid 65534). The default CERTS_DIR and capture are AGENT_E_NOT_ROOT with
// the fix, a key.pem of mode 000 is AGENT_E_IO with the chmod; never AGENT_E_INTERNAL ("a bug"),
// never "iptables is not installed".
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startDevCa } from '../../src/ca/index';
import { requireRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';

const ROOT = path.join(__dirname, '../..');
const MAIN = path.join(ROOT, 'src/main.ts');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
const NOBODY = 65534;

/** `istio-node-agent run` as uid/gid 65534 with only `vars` set; its exit code and output. */
function runAsNobody(
  cwd: string,
  vars: Record<string, string>,
  args: readonly string[] = ['run'],
): { code: number | null; out: string; stdout: string } {
  const r = spawnSync(
    'setpriv',
    [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      process.execPath,
      '--import',
      TSX,
      MAIN,
      ...args,
    ],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', ...vars },
      encoding: 'utf8',
      timeout: 120_000,
      // A directory this user may write (the test runner's exit hook writes there).
      cwd,
    },
  );
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

if (requireRoot(t, 'the not-root test (it switches to uid 65534)')) {
  t.test('run as a user other than root: permission problems with their fix', async (t) => {
    const ca = await startDevCa({ ttlMs: 3600_000 });
    t.teardown(() => ca.stop());
    const work = tmpDir(t, 'not-root');
    const own = (p: string): string => {
      mkdirSync(p, { recursive: true, mode: 0o700 });
      chownSync(p, NOBODY, NOBODY);
      return p;
    };
    const state = own(path.join(work, 'state'));
    const base = {
      ISTIO_CLUSTER_CONFIG: '/dev/null',
      ISTIO_SIDECAR_CONFIG: '/dev/null',
      ISTIO_AGENT_STATE_DIR: state,
      CITADEL_ADDRESS: ca.address,
      CITADEL_ENV: 'onprem',
      SIDECAR_MODE: 'none',
    };

    // The default CERTS_DIR (/etc/certs, root's): not root, with the fix; not "a bug".
    const certsDefault = runAsNobody(state, { ...base, ISTIO_CAPTURE: 'false' });
    t.equal(certsDefault.code, 1, certsDefault.out);
    t.match(certsDefault.out, /AGENT_E_NOT_ROOT/);
    t.match(certsDefault.out, /run it as root/);
    t.notMatch(certsDefault.out, /AGENT_E_INTERNAL/);

    const certs = own(path.join(work, 'certs'));
    // A sound bootstrap set in the user's own CERTS_DIR.
    const boot = await ca.issueBootstrap('spiffe://cluster.local/ns/default/sa/vm', 3600_000);
    for (const [f, pem] of [
      ['cert-chain.pem', boot.certChainPem],
      ['key.pem', boot.keyPem],
      ['root-cert.pem', boot.rootPem],
    ] as const) {
      writeFileSync(path.join(certs, f), pem);
      chownSync(path.join(certs, f), NOBODY, NOBODY);
    }

    // Capture on: not root, not "iptables is not installed".
    const capture = runAsNobody(state, { ...base, CERTS_DIR: certs, ISTIO_CAPTURE: 'true' });
    t.equal(capture.code, 1, capture.out);
    t.match(capture.out, /AGENT_E_NOT_ROOT/);
    t.match(capture.out, /ISTIO_CAPTURE=false/);
    t.notMatch(capture.out, /not installed|AGENT_E_IPTABLES_BACKEND|AGENT_E_INTERNAL/);

    // key.pem of mode 000 in the user's own CERTS_DIR: AGENT_E_IO naming the chmod.
    chmodSync(path.join(certs, 'key.pem'), 0o000);
    const key = runAsNobody(state, { ...base, CERTS_DIR: certs, ISTIO_CAPTURE: 'false' });
    t.not(key.code, 0, key.out);
    t.match(key.out, /AGENT_E_IO/);
    t.match(key.out, /key\.pem.*permission denied \(EACCES\).*chmod u\+rw/);
    t.notMatch(key.out, /AGENT_E_INTERNAL/);
  });

  t.test('check as a user other than root: what needs root is skipped, saying so', async (t) => {
    const work = tmpDir(t, 'not-root-check');
    const state = path.join(work, 'state');
    mkdirSync(state, { mode: 0o700 });
    chownSync(state, NOBODY, NOBODY);
    const vars = {
      ISTIO_CLUSTER_CONFIG: '/dev/null',
      ISTIO_SIDECAR_CONFIG: '/dev/null',
      ISTIO_AGENT_STATE_DIR: state,
      CITADEL_ENV: 'onprem',
      SIDECAR_MODE: 'none',
      CERTS_DIR: state,
    };
    const plain = runAsNobody(state, vars, ['check']);
    t.match(plain.out, /skip capture +not checked without root: /);
    t.match(plain.out, /Run it as root to check what was skipped\./);
    const typo = runAsNobody(state, { ...vars, ENVOY_USER: 'nosuchuser' }, ['check', '--json']);
    t.equal(typo.code, 78, 'a wrong ENVOY_USER is found without root too');
    const items = JSON.parse(typo.stdout) as {
      name: string;
      code?: string;
    }[];
    t.equal(items.find((i) => i.name === 'capture')?.code, 'AGENT_E_USER_UNKNOWN');
  });
}
