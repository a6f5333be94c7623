// Durable writes (src/lib/atomic-write.ts): the pieces every writer of the agent goes through.
// atomicWrite's trust rules are in safe-fs.test.ts; the certificate store's use in cert-store.
import t, { type Test } from 'tap';
import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { atomicSymlink, atomicWrite, writeNewFile } from '../../src/lib/atomic-write';
import { tmpDir } from '../helpers/tmp';

function tmp(t: Test): string {
  const d = tmpDir(t, 'atomic-write-', { mode: 0o700 });
  return d;
}

t.test('writeNewFile: a new file only, with its mode; never through a link', async (t) => {
  const d = tmp(t);
  const f = path.join(d, 'key.pem');
  await writeNewFile(f, 'secret', { mode: 0o600 });
  t.equal(readFileSync(f, 'utf8'), 'secret');
  t.equal(statSync(f).mode & 0o777, 0o600);
  await t.rejects(writeNewFile(f, 'again'), { code: 'EEXIST' }, 'an existing file is not reused');
  t.equal(readFileSync(f, 'utf8'), 'secret', 'and stays as it was');
  symlinkSync(path.join(d, 'elsewhere'), path.join(d, 'link'));
  await t.rejects(writeNewFile(path.join(d, 'link'), 'x'), { code: 'EEXIST' });
  t.same(readdirSync(d).sort(), ['key.pem', 'link'], 'nothing made through the link');
  await writeNewFile(path.join(d, 'plain'), new Uint8Array([104, 105]), { durable: false });
  t.equal(readFileSync(path.join(d, 'plain'), 'utf8'), 'hi');
  t.equal(statSync(path.join(d, 'plain')).mode & 0o777, 0o644, 'default mode 0644');
});

t.test('atomicWrite: replaces the content whole, no temporary file left', async (t) => {
  const d = tmp(t);
  const f = path.join(d, 'status.json');
  await atomicWrite(f, 'one', { mode: 0o640 });
  await atomicWrite(f, 'two', { mode: 0o640, durable: false });
  t.equal(readFileSync(f, 'utf8'), 'two');
  t.equal(statSync(f).mode & 0o777, 0o640);
  t.same(readdirSync(d), ['status.json']);
});

t.test('atomicSymlink: swaps a file or a link for the link, in one rename', async (t) => {
  const d = tmp(t);
  const link = path.join(d, 'cert-chain.pem');
  writeFileSync(link, 'a plain file first');
  await atomicSymlink('..data/cert-chain.pem', link);
  t.ok(lstatSync(link).isSymbolicLink());
  t.equal(readlinkSync(link), '..data/cert-chain.pem');
  await atomicSymlink('..data2/cert-chain.pem', link, { durable: false });
  t.equal(readlinkSync(link), '..data2/cert-chain.pem', 'a link is replaced, not followed');
  await atomicSymlink('gen', path.join(d, '..data'), { tmp: path.join(d, '..data_tmp_x') });
  t.equal(readlinkSync(path.join(d, '..data')), 'gen');
  t.same(readdirSync(d).sort(), ['..data', 'cert-chain.pem'], 'no temporary name left');
  // A rename that fails (a directory in the way) leaves no temporary link behind.
  const dirInTheWay = path.join(d, 'dir');
  mkdirSync(path.join(dirInTheWay, 'sub'), { recursive: true });
  await t.rejects(atomicSymlink('t', dirInTheWay));
  t.same(readdirSync(d).sort(), ['..data', 'cert-chain.pem', 'dir']);
});
