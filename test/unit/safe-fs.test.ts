// The trust rules of src/lib/safe-fs.ts on real files: what root refuses to read, run or write.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from '../../src/lib/atomic-write';
import { AgentError } from '../../src/lib/errors';
import { ensureDir, readFileSafe, resolveTrusted } from '../../src/lib/safe-fs';
import { isRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';

/** Someone else: `nobody` on Debian. */
const OTHER = 65534;

function tmp(t: Test): string {
  const d = tmpDir(t, 'safe-fs-', { mode: 0o700 });
  return d;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof AgentError ? e.code : `other: ${String(e)}`;
  }
}

t.test('readFileSafe reads a regular file from one descriptor, bounded', async (t) => {
  const d = tmp(t);
  writeFileSync(path.join(d, 'a'), 'hello');
  const r = await readFileSafe(path.join(d, 'a'), { trusted: true });
  t.equal(r?.data.toString(), 'hello');
  t.equal(await readFileSafe(path.join(d, 'missing')), undefined, 'missing is undefined');
  writeFileSync(path.join(d, 'big'), Buffer.alloc(2000));
  t.equal(await code(readFileSafe(path.join(d, 'big'), { maxBytes: 1000 })), 'AGENT_E_UNSAFE_PATH');
  t.equal((await readFileSafe(path.join(d, 'big'), { maxBytes: 2000 }))?.data.length, 2000);
});

t.test('readFileSafe refuses a symlink, a FIFO, a directory and a device', async (t) => {
  const d = tmp(t);
  writeFileSync(path.join(d, 'secret'), 'root only');
  symlinkSync(path.join(d, 'secret'), path.join(d, 'link'));
  symlinkSync('/dev/zero', path.join(d, 'zero'));
  execFileSync('mkfifo', [path.join(d, 'fifo')]);
  mkdirSync(path.join(d, 'dir'));
  for (const name of ['link', 'zero', 'fifo', 'dir']) {
    const p = readFileSafe(path.join(d, name));
    t.equal(await code(p), 'AGENT_E_UNSAFE_PATH', `${name} refused (and a FIFO does not block)`);
  }
  t.equal(await code(readFileSafe('/dev/null')), 'AGENT_E_UNSAFE_PATH', '/dev/null is a device');
  await t.rejects(readFileSafe(path.join(d, 'link')), /is a symlink/);
  await t.rejects(readFileSafe(path.join(d, 'fifo')), /is a FIFO, not a regular file/);
});

t.test('trusted: group- or world-writable files and directories are refused', async (t) => {
  const d = tmp(t);
  mkdirSync(path.join(d, 'conf'));
  writeFileSync(path.join(d, 'conf', 'cluster.env'), 'A=1\n');
  const file = path.join(d, 'conf', 'cluster.env');
  t.ok(await readFileSafe(file, { trusted: true }), 'a 0644 file in a 0755 directory is fine');
  chmodSync(file, 0o664);
  await t.rejects(readFileSafe(file, { trusted: true }), {
    code: 'AGENT_E_UNSAFE_PATH',
    message: /cluster\.env is writable by its group \(mode 0664\).*chmod go-w/,
  });
  t.ok(await readFileSafe(file), 'without `trusted`, only the type and size matter');
  chmodSync(file, 0o644);
  chmodSync(path.join(d, 'conf'), 0o777);
  await t.rejects(readFileSafe(file, { trusted: true }), {
    message: /conf is writable by every user \(mode 0777\)/,
  });
  chmodSync(path.join(d, 'conf'), 0o1777);
  await t.rejects(
    readFileSafe(file, { trusted: true }),
    { message: /writable by every user \(mode 1777\)/ },
    'the sticky bit does not save the directory the file is in',
  );
  chmodSync(path.join(d, 'conf'), 0o755);
  // A sticky, world-writable directory ABOVE (as /tmp) is fine: no one else can rename or
  // replace the trusted directory below it.
  const sticky = path.join(d, 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  mkdirSync(path.join(sticky, 'conf'));
  writeFileSync(path.join(sticky, 'conf', 'f'), 'x');
  t.ok(await readFileSafe(path.join(sticky, 'conf', 'f'), { trusted: true }), 'sticky above: ok');
  chmodSync(sticky, 0o777);
  t.equal(
    await code(readFileSafe(path.join(sticky, 'conf', 'f'), { trusted: true })),
    'AGENT_E_UNSAFE_PATH',
    'the same directory without the sticky bit is refused',
  );
});

t.test('resolveTrusted follows trusted symlinks and reports missing parts', async (t) => {
  const d = tmp(t);
  mkdirSync(path.join(d, 'real'));
  symlinkSync('real', path.join(d, 'alias'));
  const r = await resolveTrusted(path.join(d, 'alias', 'x'));
  t.equal(r.stat, undefined);
  t.equal(r.missingFrom, path.join(d, 'real', 'x'));
  const r2 = await resolveTrusted(path.join(d, 'alias'));
  t.equal(r2.real, path.join(d, 'real'));
  t.ok(r2.stat?.isDirectory());
});

t.test('ensureDir makes directories with the mode asked, and checks existing ones', async (t) => {
  const d = tmp(t);
  const made = path.join(d, 'a', 'b');
  await ensureDir(made, 0o700);
  t.equal(lstatSync(made).mode & 0o777, 0o700);
  await ensureDir(made, 0o700);
  chmodSync(made, 0o777);
  t.equal(await code(ensureDir(made, 0o700)), 'AGENT_E_UNSAFE_PATH', 'world-writable refused');
  rmSync(made, { recursive: true });
  symlinkSync('/', made);
  const r = await code(ensureDir(made, 0o700));
  t.equal(r, 'resolved', 'a symlink owned by a trusted user to a trusted directory is followed');
});

t.test('atomicWrite: never into a directory others can write', async (t) => {
  const d = tmp(t);
  const dir = path.join(d, 'out');
  mkdirSync(dir);
  await atomicWrite(path.join(dir, 'f'), 'one');
  chmodSync(dir, 0o1777);
  t.equal(await code(atomicWrite(path.join(dir, 'f'), 'two')), 'AGENT_E_UNSAFE_PATH');
});

t.test('as root: a file or directory owned by another user is refused', async (t) => {
  if (!isRoot) {
    t.pass('skipped: chown needs root', { skip: 'needs root' });
    return;
  }
  const d = tmp(t);
  const conf = path.join(d, 'conf');
  mkdirSync(conf);
  const file = path.join(conf, 'sidecar.env');
  writeFileSync(file, 'SIDECAR_MODE=envoy\n');
  chownSync(file, OTHER, OTHER);
  await t.rejects(readFileSafe(file, { trusted: true }), {
    code: 'AGENT_E_UNSAFE_PATH',
    message: new RegExp(`sidecar\\.env is owned by uid ${OTHER}, not root.*chown root:root`),
  });
  chownSync(file, 0, 0);
  chownSync(conf, OTHER, OTHER);
  await t.rejects(readFileSafe(file, { trusted: true }), {
    message: new RegExp(`conf is owned by uid ${OTHER}`),
  });
  t.equal(await code(ensureDir(conf, 0o755)), 'AGENT_E_UNSAFE_PATH', 'not a directory to use');
  t.equal(await code(atomicWrite(path.join(conf, 'x'), 'y')), 'AGENT_E_UNSAFE_PATH');
  chownSync(conf, 0, 0);
  // A symlink planted by someone else (in a sticky directory, as /tmp) is not followed.
  const sticky = path.join(d, 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const link = path.join(sticky, 'link');
  symlinkSync(conf, link);
  execFileSync('chown', ['-h', `${OTHER}:${OTHER}`, link]);
  await t.rejects(readFileSafe(path.join(link, 'sidecar.env'), { trusted: true }), {
    message: new RegExp(`link is a symlink owned by uid ${OTHER}`),
  });
});
