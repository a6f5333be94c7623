// `dev` with a bad option (issue 11): it used to print the error and then hang, the embedded CA
// still listening. Through the real CLI: it exits (78 for a bad value, 2 for an unknown option)
// before anything listens or is written.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/tmp';

const MAIN = path.join(__dirname, '../../src/main.ts');

function dev(args: string[]): { code: number | null; signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'dev', ...args], {
    encoding: 'utf8',
    // A hang is what this test catches: it ends the child instead of waiting for ever.
    timeout: 120_000,
    killSignal: 'SIGKILL',
  });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

t.test('dev: bad values exit 78 at once, every one reported, nothing started', async (t) => {
  const state = path.join(tmpDir(t, 'dev-opts'), 'state');
  const r = dev(['--state-dir', state, '--api', 'Foo', '--key', 'DSA', '--ttl', '10s']);
  t.equal(r.signal, null, 'it exits by itself (no hang)');
  t.equal(r.code, 78);
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 3, `one line per bad option: ${r.stderr}`);
  t.match(lines[0], /^istio-node-agent dev: command line: --api: "Foo" is not one of/);
  t.match(r.stderr, /--key: "DSA"/);
  t.match(r.stderr, /--ttl: 10s is shorter than the minimum 1m0s/);
  t.notMatch(r.stderr, /dev: dev:/);
  t.notOk(existsSync(state), 'the state directory was not made');

  const u = dev(['--state-dir', state, '--tll', '1h']);
  t.equal(u.code, 2, 'an unknown option is a usage error');
  t.match(u.stderr, /unknown option --tll; did you mean --ttl\?/);
  t.match(u.stderr, /Usage: istio-node-agent dev/);
});
