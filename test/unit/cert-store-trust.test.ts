// The certificate store among files someone else planted: symlinks, FIFOs, devices, a directory
// others can write. Nothing outside CERTS_DIR is written, no secret is copied in, nothing blocks.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { CertStore } from '../../src/certs/store';
import { AgentError } from '../../src/lib/errors';
import { makeLeaf, makeRoot } from '../helpers/pki';
import { isRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const SECRET = '-----BEGIN PRIVATE KEY-----\nroot only secret\n-----END PRIVATE KEY-----\n';

function tmp(t: Test): string {
  const d = tmpDir(t, 'store-trust-', { mode: 0o700 });
  return d;
}

async function bootstrapSet() {
  const root = await makeRoot();
  const leaf = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: Date.now() - 1000,
    notAfter: Date.now() + 3600_000,
  });
  return { keyPem: leaf.key.pem, chainPem: leaf.certPem, rootPem: root.certPem };
}

function writeSet(dir: string, s: Awaited<ReturnType<typeof bootstrapSet>>): void {
  writeFileSync(path.join(dir, 'key.pem'), s.keyPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'cert-chain.pem'), s.chainPem);
  writeFileSync(path.join(dir, 'root-cert.pem'), s.rootPem);
}

/** Every regular file under `dir`, followed into subdirectories but not through symlinks. */
function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...allFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function failure(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AgentError) return e;
    throw e;
  }
  throw new Error('expected an AgentError');
}

t.test('a planted ..bootstrap symlink is refused; nothing is written through it', async (t) => {
  const work = tmp(t);
  const dir = path.join(work, 'certs');
  const outside = path.join(work, 'outside');
  mkdirSync(dir);
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'key.pem'), 'victim\n');
  writeSet(dir, await bootstrapSet());
  symlinkSync(outside, path.join(dir, '..bootstrap'));
  const err = await failure(new CertStore(dir).prepare());
  t.equal(err.code, 'AGENT_E_CERT_STORE');
  t.match(err.message, /\.\.bootstrap is not the agent's directory \(a symlink\)/);
  t.equal(readFileSync(path.join(outside, 'key.pem'), 'utf8'), 'victim\n', 'victim untouched');
  t.same(readdirSync(outside), ['key.pem'], 'nothing created outside');
});

t.test('a symlink planted at the temporary name inside ..bootstrap is not followed', async (t) => {
  const work = tmp(t);
  const dir = path.join(work, 'certs');
  const victim = path.join(work, 'victim');
  mkdirSync(dir);
  writeFileSync(victim, 'victim\n');
  writeSet(dir, await bootstrapSet());
  mkdirSync(path.join(dir, '..bootstrap'), { mode: 0o700 });
  for (const f of ['key.pem', 'cert-chain.pem', 'root-cert.pem']) {
    symlinkSync(victim, path.join(dir, '..bootstrap', `.${f}.tmp`));
  }
  await new CertStore(dir).prepare();
  t.equal(readFileSync(victim, 'utf8'), 'victim\n', 'the victim file is untouched');
});

t.test('..data pointing outside CERTS_DIR is refused, not read', async (t) => {
  const work = tmp(t);
  const dir = path.join(work, 'certs');
  const evil = path.join(work, 'evil');
  mkdirSync(dir);
  mkdirSync(evil);
  writeSet(evil, await bootstrapSet());
  symlinkSync(evil, path.join(dir, '..data'));
  const err = await failure(new CertStore(dir).read());
  t.equal(err.code, 'AGENT_E_CERT_STORE');
  t.match(err.message, /not the agent's link to a certificate generation/);
});

t.test('PEM names as symlinks to /dev/zero or a secret, or as a FIFO: refused', async (t) => {
  const set = await bootstrapSet();
  for (const [name, plant] of [
    [
      '/dev/zero',
      (p: string) => {
        symlinkSync('/dev/zero', p);
      },
    ],
    [
      'a secret',
      (p: string) => {
        symlinkSync(path.join(path.dirname(p), '..', 'secret'), p);
      },
    ],
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p])],
  ] as const) {
    for (const f of ['key.pem', 'cert-chain.pem', 'root-cert.pem']) {
      const work = tmp(t);
      const dir = path.join(work, 'certs');
      mkdirSync(dir);
      writeFileSync(path.join(work, 'secret'), SECRET, { mode: 0o600 });
      writeSet(dir, set);
      rmSync(path.join(dir, f));
      plant(path.join(dir, f));
      const err = await failure(new CertStore(dir).prepare());
      t.ok(
        ['AGENT_E_BOOTSTRAP_INVALID', 'AGENT_E_UNSAFE_PATH'].includes(err.code),
        `${f} as ${name}: refused (${err.code})`,
      );
      const copied = allFiles(dir).filter((p) => readFileSync(p, 'utf8').includes('root only'));
      t.same(copied, [], `${f} as ${name}: the secret is not copied`);
    }
  }
});

t.test('check-then-read race: key.pem flipping to a symlink never leaks the target', async (t) => {
  // A stand-in for the sidecar user flipping key.pem between its bootstrap key and a symlink to
  // a root-only secret while the agent (re)starts. Reads are by one descriptor opened with
  // O_NOFOLLOW: the agent reads the file or refuses the link, never the link's target.
  const set = await bootstrapSet();
  const ROUNDS = 30;
  let leaks = 0;
  let refused = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const work = tmp(t);
    const dir = path.join(work, 'certs');
    mkdirSync(dir);
    writeFileSync(path.join(work, 'secret'), SECRET, { mode: 0o600 });
    writeFileSync(path.join(work, 'key'), set.keyPem, { mode: 0o600 });
    writeSet(dir, set);
    const flipper = spawn(
      'sh',
      [
        '-c',
        'while kill -0 $PPID 2>/dev/null; do ln -sfn ../secret certs/.k && mv -T certs/.k certs/key.pem; cp key certs/.f && mv -T certs/.f certs/key.pem; done',
      ],
      // Its own process group: the kill below must take the ln/cp/mv it is running too, or one
      // of them can still write into certs/ while the directory is being removed. The loop ends
      // by itself once this process is gone (a runner's kill skips the kill below).
      { cwd: work, stdio: 'ignore', detached: true },
    );
    await new Promise((r) => setTimeout(r, 20));
    await new CertStore(dir).prepare().catch(() => {
      refused++;
    });
    const exited = new Promise((r) => flipper.once('exit', r));
    process.kill(-flipper.pid!, 'SIGKILL');
    await exited;
    const files = allFiles(dir).filter((p) => !p.endsWith('/.f'));
    if (files.some((p) => readFileSync(p, 'utf8').includes('root only'))) leaks++;
  }
  t.equal(
    leaks,
    0,
    `the secret never reached the store (${refused} of ${ROUNDS} starts refused the symlink)`,
  );
});

t.test('a CERTS_DIR others can write is refused before anything is written', async (t) => {
  const work = tmp(t);
  const dir = path.join(work, 'certs');
  mkdirSync(dir);
  writeSet(dir, await bootstrapSet());
  chmodSync(dir, 0o777);
  const err = await failure(new CertStore(dir).prepare());
  t.equal(err.code, 'AGENT_E_UNSAFE_PATH');
  t.equal(err.exitCode, 78);
  t.match(err.message, /certs is writable by every user \(mode 0777\).*chmod go-w/);
  t.same(readdirSync(dir).sort(), ['cert-chain.pem', 'key.pem', 'root-cert.pem'], 'untouched');
});

t.test('a bootstrap key others could read is taken over with a warning', async (t) => {
  const work = tmp(t);
  const dir = path.join(work, 'certs');
  mkdirSync(dir);
  writeSet(dir, await bootstrapSet());
  chmodSync(path.join(dir, 'key.pem'), 0o644);
  const store = new CertStore(dir);
  t.equal(await store.prepare(), true);
  t.match(store.notes, [{ message: /key\.pem was readable by others \(mode 644\)/ }]);
  t.equal(statSync(path.join(dir, 'key.pem')).mode & 0o777, 0o600, "the agent's copy is 0600");
});

t.test('as root: a CERTS_DIR owned by the sidecar user is refused', async (t) => {
  if (!isRoot) {
    t.pass('skipped: chown needs root', { skip: 'needs root' });
    return;
  }
  const work = tmp(t);
  const dir = path.join(work, 'certs');
  mkdirSync(dir);
  writeSet(dir, await bootstrapSet());
  chownSync(dir, 65534, 65534);
  const err = await failure(new CertStore(dir).prepare());
  t.equal(err.code, 'AGENT_E_UNSAFE_PATH');
  t.match(err.message, /certs is owned by uid 65534, not root.*chown root:root/);
});
