import { symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { commandPath, sameProgram } from '../../src/netfilter/backend';
import { tmpDir } from '../helpers/tmp';

t.test('sameProgram: save and restore links to one executable count as one program', async (t) => {
  const bin = tmpDir(t, 'nf-bin-');
  const other = tmpDir(t, 'nf-bin2-');
  writeFileSync(path.join(bin, 'xtables-multi'), '#!/bin/sh\n', { mode: 0o755 });
  symlinkSync('xtables-multi', path.join(bin, 'iptables-nft-save'));
  symlinkSync('xtables-multi', path.join(bin, 'iptables-nft-restore'));
  writeFileSync(path.join(bin, 'iptables-legacy-save'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(path.join(other, 'iptables-legacy-restore'), '#!/bin/sh\n', { mode: 0o755 });
  const search = `${bin}::${other}`;

  t.equal(await commandPath('iptables-nft-restore', search), path.join(bin, 'xtables-multi'));
  t.equal(
    await commandPath('iptables-legacy-restore', search),
    path.join(other, 'iptables-legacy-restore'),
    'later PATH entries are searched, empty ones skipped',
  );
  t.equal(await commandPath('ip6tables-nft-restore', search), undefined, 'missing: undefined');
  t.equal(await sameProgram('iptables-nft-restore', 'iptables-nft-save', search), true);
  t.equal(
    await sameProgram('iptables-legacy-restore', 'iptables-legacy-save', search),
    false,
    'two files: the restore program must be run to know it works',
  );
  t.equal(
    await sameProgram('ip6tables-nft-restore', 'ip6tables-nft-save', search),
    false,
    'neither there: not the same',
  );
});
