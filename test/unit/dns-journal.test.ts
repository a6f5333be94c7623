// The DNS change record's pure decisions (src/dns/journal.ts): what is recorded before a change,
// what a rolled-back change leaves in the record, and what undoing a recorded change does.
import t from 'tap';
import { saveState, sha256, type FileState } from '../../src/dns/files';
import {
  forgetChange,
  recordChange,
  revertChange,
  undoStep,
  type Change,
} from '../../src/dns/journal';
import { MANAGED_MARK } from '../../src/dns/render';
import { RESOLV_CONF, RESOLV_CONF_BLOCK } from '../../src/dns/resolver';
import { EMPTY_STATE, type ChangeRecord, type DnsState } from '../../src/dns/state';

const ABSENT: FileState = { kind: 'absent' };
const file = (content: string, mode = 0o644, uid = 0, gid = 0): FileState => ({
  kind: 'file',
  bytes: Buffer.from(content),
  mode,
  uid,
  gid,
});
const NOW = Date.UTC(2026, 0, 1);
const LATER = Date.UTC(2026, 5, 1);
const ORIGINAL = 'nameserver 10.0.0.2\n';
const OURS = RESOLV_CONF_BLOCK + ORIGINAL;

function prepend(before: FileState, after: string, createdDirs: string[] = []): Change {
  return {
    path: RESOLV_CONF,
    role: 'resolver',
    before,
    after,
    block: RESOLV_CONF_BLOCK,
    createdDirs,
  };
}

function only(state: DnsState): ChangeRecord {
  if (state.changes.length !== 1)
    throw new Error(`expected one record, got ${state.changes.length}`);
  return state.changes[0]!;
}

void t.test('recordChange: the first change keeps the original and when it was made', (t) => {
  const s = recordChange(EMPTY_STATE, prepend(file(ORIGINAL, 0o600, 0, 4), OURS, ['/etc']), NOW);
  t.same(only(s), {
    path: RESOLV_CONF,
    role: 'resolver',
    original: saveState(file(ORIGINAL, 0o600, 0, 4)),
    writtenSha256: sha256(OURS),
    block: RESOLV_CONF_BLOCK,
    createdDirs: ['/etc'],
    since: '2026-01-01T00:00:00.000Z',
  });
  t.same(EMPTY_STATE.changes, [], 'the state passed in is not changed');
  t.end();
});

void t.test('recordChange: our change still in place keeps its original and since', (t) => {
  const first = recordChange(EMPTY_STATE, prepend(file(ORIGINAL), OURS), NOW);
  const next = 'nameserver 127.0.0.1\nnameserver 10.0.0.3\n';
  const second = recordChange(first, prepend(file(OURS), next), LATER);
  const rec = only(second);
  t.same(rec.original, saveState(file(ORIGINAL)), 'the original is the one before the agent');
  t.equal(rec.writtenSha256, sha256(next));
  t.equal(rec.since, '2026-01-01T00:00:00.000Z');
  t.end();
});

void t.test(
  'recordChange: a file rewritten since is the new original; created dirs add up',
  (t) => {
    const first = recordChange(EMPTY_STATE, prepend(file(ORIGINAL), OURS, ['/etc']), NOW);
    const rewritten = 'nameserver 10.9.9.9\n';
    const second = recordChange(
      first,
      prepend(file(rewritten), RESOLV_CONF_BLOCK + rewritten, ['/etc/x']),
      LATER,
    );
    const rec = only(second);
    t.same(rec.original, saveState(file(rewritten)));
    t.same(rec.createdDirs, ['/etc', '/etc/x']);
    t.equal(rec.since, '2026-06-01T00:00:00.000Z');
    t.end();
  },
);

void t.test('recordChange: a managed file with no record is ours: its original is nothing', (t) => {
  const drop = `${MANAGED_MARK}\naddress=/istio-pilot/10.0.0.7\n`;
  const s = recordChange(
    EMPTY_STATE,
    {
      path: '/etc/dnsmasq.d/kubedns',
      role: 'drop-in',
      before: file(`${MANAGED_MARK}\nold\n`),
      after: drop,
      block: undefined,
      createdDirs: [],
    },
    NOW,
  );
  const rec = only(s);
  t.same(rec.original, { kind: 'absent' });
  t.notOk('block' in rec, 'no block for a file the agent writes whole');
  t.end();
});

void t.test('recordChange: other paths keep their records; the changed one goes last', (t) => {
  const a = recordChange(EMPTY_STATE, prepend(file(ORIGINAL), OURS), NOW);
  const b = recordChange(
    a,
    {
      path: '/etc/dnsmasq.d/kubedns',
      role: 'drop-in',
      before: ABSENT,
      after: 'x',
      block: undefined,
      createdDirs: [],
    },
    NOW,
  );
  const c = recordChange(b, prepend(file(OURS), OURS + '#\n'), NOW);
  t.same(
    c.changes.map((r) => r.path),
    ['/etc/dnsmasq.d/kubedns', RESOLV_CONF],
  );
  t.same(
    forgetChange(c, RESOLV_CONF).changes.map((r) => r.path),
    ['/etc/dnsmasq.d/kubedns'],
  );
  t.end();
});

void t.test('revertChange: after a failed change was rolled back', (t) => {
  const recorded = recordChange(EMPTY_STATE, prepend(file(ORIGINAL), OURS), NOW);
  t.equal(revertChange(EMPTY_STATE, RESOLV_CONF, file(ORIGINAL)), undefined, 'no record: as is');
  t.same(
    revertChange(recorded, RESOLV_CONF, file(ORIGINAL))?.changes,
    [],
    'back to the original: the record is dropped',
  );
  const earlier = 'nameserver 127.0.0.1\n# earlier version of ours\n';
  const back = revertChange(recorded, RESOLV_CONF, file(earlier));
  t.equal(only(back!).writtenSha256, sha256(earlier), 'back to an earlier write of ours');
  t.same(only(back!).original, saveState(file(ORIGINAL)));
  t.equal(
    revertChange(recorded, RESOLV_CONF, { kind: 'symlink', target: '/x' }),
    undefined,
    'neither: the record stays',
  );
  t.end();
});

void t.test('undoStep: each case of undoing one recorded change', (t) => {
  const rec = only(recordChange(EMPTY_STATE, prepend(file(ORIGINAL), OURS), NOW));
  t.same(undoStep(file(OURS), rec), { step: 'restore-original' }, 'as the agent left it');
  t.same(undoStep(file(ORIGINAL), rec), { step: 'already-original' });
  const edited = RESOLV_CONF_BLOCK + ORIGINAL + 'search example.com\n';
  t.same(
    undoStep(file(edited, 0o640, 0, 7), rec),
    {
      step: 'remove-block',
      content: ORIGINAL + 'search example.com\n',
      owner: { mode: 0o640, uid: 0, gid: 7 },
    },
    'edited since: only our lines go, mode and owner stay',
  );
  t.same(undoStep(file('nameserver 10.9.9.9\n'), rec), { step: 'leave-alone' });
  t.same(undoStep(ABSENT, rec), { step: 'leave-alone' }, 'removed since, original was a file');

  const created: ChangeRecord = { ...rec, original: { kind: 'absent' }, block: undefined };
  t.same(undoStep(ABSENT, created), { step: 'already-original' });
  t.same(
    undoStep(file(`${MANAGED_MARK}\nanother version\n`), created),
    { step: 'restore-original' },
    'a file still carrying our header is ours',
  );
  t.end();
});
