import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  writeFileSync,
  readFileSync,
  lstatSync,
  readlinkSync,
  readdirSync,
  statSync,
  rmSync,
} from 'node:fs';
import * as path from 'node:path';
import { CertStore } from '../../src/certs/store';
import { makeLeaf, makeRoot } from '../helpers/pki';
import { tmpDir } from '../helpers/tmp';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';

async function makeSet(root: Awaited<ReturnType<typeof makeRoot>>) {
  const leaf = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: Date.now() - 1000,
    notAfter: Date.now() + 3600_000,
  });
  return { keyPem: leaf.key.pem, chainPem: leaf.certPem, rootPem: root.certPem };
}

/** The set as a reader (envoy) sees it through the top-level names is complete and consistent. */
function assertConsistent(t: Test, dir: string, roots: string[]): void {
  const key = readFileSync(path.join(dir, 'key.pem'), 'utf8');
  const chain = readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8');
  const root = readFileSync(path.join(dir, 'root-cert.pem'), 'utf8');
  const leaf = new X509Certificate(chain);
  t.ok(leaf.checkPrivateKey(createPrivateKey(key)), 'key matches the certificate');
  t.ok(roots.includes(root), 'root is a root we wrote');
  t.ok(leaf.verify(new X509Certificate(root).publicKey), 'chain verifies to root-cert.pem');
}

t.test('takes over plain files, keeps them, publishes generations by symlink flip', async (t) => {
  const root = await makeRoot();
  const boot = await makeSet(root);
  const dir = tmpDir(t, 'certs-', { mode: 0o700 });
  writeFileSync(path.join(dir, 'key.pem'), boot.keyPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'cert-chain.pem'), boot.chainPem);
  writeFileSync(path.join(dir, 'root-cert.pem'), boot.rootPem);
  const store = new CertStore(dir);
  t.equal(await store.prepare(), true, 'took over');
  for (const f of ['key.pem', 'cert-chain.pem', 'root-cert.pem']) {
    t.ok(lstatSync(path.join(dir, f)).isSymbolicLink(), `${f} is now a symlink`);
    t.equal(readlinkSync(path.join(dir, f)), `..data/${f}`);
  }
  const s1 = await store.read();
  t.equal(s1.keyPem, boot.keyPem);
  t.equal(s1.meta.issuer, 'bootstrap');
  t.same(await store.readBootstrap(), boot, 'bootstrap set kept in ..bootstrap');
  t.equal(await store.prepare(), false, 'a second prepare takes nothing over');

  const next = await makeSet(root);
  const gen = await store.write(next, { issuer: 'agent', identity: ID, serial: '1' });
  t.equal(readlinkSync(path.join(dir, '..data')), gen);
  const s2 = await store.read();
  t.equal(s2.keyPem, next.keyPem);
  t.equal(s2.meta.issuer, 'agent');
  t.equal(statSync(path.join(dir, gen, 'key.pem')).mode & 0o777, 0o600, 'key.pem 0600');
  t.equal(
    statSync(path.join(dir, gen, 'cert-chain.pem')).mode & 0o777,
    0o644,
    'cert-chain.pem 0644',
  );
  const gens = readdirSync(dir).filter((n) => /^\.\.\d{4}_/.test(n));
  t.same(gens, [gen], 'old generations removed');
  t.same(await store.readBootstrap(), boot, 'bootstrap still kept after rotation');

  // An operator drops a new bootstrap set by hand over our symlinks: it wins.
  const manual = await makeSet(root);
  rmSync(path.join(dir, 'cert-chain.pem'));
  rmSync(path.join(dir, 'key.pem'));
  writeFileSync(path.join(dir, 'cert-chain.pem'), manual.chainPem);
  writeFileSync(path.join(dir, 'key.pem'), manual.keyPem);
  t.equal(await store.prepare(), true);
  const s3 = await store.read();
  t.equal(s3.chainPem, manual.chainPem);
  t.equal(s3.keyPem, manual.keyPem);
  t.equal(s3.rootPem, boot.rootPem, 'root kept from the current set');
  t.equal(s3.meta.issuer, 'bootstrap');
  assertConsistent(t, dir, [root.certPem]);
});

t.test('removes leftovers of an interrupted write', async (t) => {
  const root = await makeRoot();
  const dir = tmpDir(t, 'certs-', { mode: 0o700 });
  const store = new CertStore(dir);
  await store.prepare();
  await store.write(await makeSet(root), { issuer: 'agent' });
  writeFileSync(path.join(dir, '..tmp-deadbeef'), 'x');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.join(dir, '..2020_01_01_00_00_00.000_ffff'));
  await store.prepare();
  t.same(
    readdirSync(dir).filter((n) => n.startsWith('..tmp') || n.startsWith('..2020')),
    [],
  );
  assertConsistent(t, dir, [root.certPem]);
});

t.test('crash consistency: kill -9 at random moments while writing sets', async (t) => {
  const root = await makeRoot();
  const sets = [await makeSet(root), await makeSet(root), await makeSet(root)];
  const work = tmpDir(t, 'crash-', { mode: 0o700 });
  const setsFile = path.join(work, 'sets.json');
  writeFileSync(setsFile, JSON.stringify(sets));
  const dir = path.join(work, 'certs');
  // Start from a published set, as the agent does after its first issuance.
  const seed = new CertStore(dir);
  await seed.prepare();
  await seed.write(sets[0]!, { issuer: 'agent' });
  const ROUNDS = 40;
  let kills = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '../helpers/store-writer.ts'), dir, setsFile],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve) => {
      child.stdout.once('data', () => {
        resolve();
      });
    });
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 40)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    kills++;
    assertConsistent(t, dir, [root.certPem]);
  }
  t.equal(kills, ROUNDS);
  // After the last crash, the next start cleans up and the set is still whole.
  await new CertStore(dir).prepare();
  t.same(
    readdirSync(dir).filter((n) => n.startsWith('..tmp') || n.startsWith('..data_tmp')),
    [],
  );
  t.equal(readdirSync(dir).filter((n) => /^\.\.\d{4}_/.test(n)).length, 1, 'one generation left');
  assertConsistent(t, dir, [root.certPem]);
});
