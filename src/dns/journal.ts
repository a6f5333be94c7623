import type { Logger } from '../observe/index';
import {
  ABSENT,
  loadState,
  readFileState,
  removeCreatedDirs,
  restoreState,
  sameState,
  saveState,
  sha256,
  under,
  writeRegular,
  type FileState,
} from './files';
import { isManaged } from './render';
import { removeBlock } from './resolver';
import { writeDnsState, type ChangeRecord, type DnsState } from './state';

/**
 * The change record kept while changing the host (written before each change it describes, see
 * state.ts), and undoing one recorded change. The decisions are pure (recordChange,
 * revertChange, undoStep); Journal and undoChange carry them out.
 */

/** One change about to be made: `hostPath` goes from `before` to `after`. */
export interface Change {
  readonly path: string;
  readonly role: ChangeRecord['role'];
  readonly before: FileState;
  readonly after: string;
  /** The text inserted into someone else's file, when the change inserts rather than writes. */
  readonly block: string | undefined;
  /** Directories created for the file (host paths, outermost first). */
  readonly createdDirs: readonly string[];
}

/**
 * Pure: the record once `change` is noted. When our earlier change is still in place, its
 * original stays what it was before it; otherwise `before` is the original (a managed file with
 * no record, the record lost, is ours: its original is nothing).
 */
export function recordChange(state: DnsState, change: Change, now: number): DnsState {
  const { path: p, role, before, after, block } = change;
  const prev = state.changes.find((c) => c.path === p);
  const stillOurs =
    prev !== undefined && before.kind === 'file' && sha256(before.bytes) === prev.writtenSha256;
  const rec: ChangeRecord = stillOurs
    ? { ...prev, writtenSha256: sha256(after), ...(block !== undefined ? { block } : {}) }
    : {
        path: p,
        role,
        original: saveState(before.kind === 'file' && isManaged(before.bytes) ? ABSENT : before),
        writtenSha256: sha256(after),
        ...(block !== undefined ? { block } : {}),
        createdDirs: [...(prev?.createdDirs ?? []), ...change.createdDirs],
        since: new Date(now).toISOString(),
      };
  return putRecord(state, rec);
}

/**
 * Pure: the record after a failed change to `p` was rolled back to `before`; undefined when the
 * record stays as it is.
 */
export function revertChange(state: DnsState, p: string, before: FileState): DnsState | undefined {
  const rec = state.changes.find((c) => c.path === p);
  if (!rec) return undefined;
  if (sameState(loadState(rec.original), before)) return forgetChange(state, p);
  if (before.kind === 'file')
    return putRecord(state, { ...rec, writtenSha256: sha256(before.bytes) });
  return undefined;
}

/** Pure: the record without `p`. */
export function forgetChange(state: DnsState, p: string): DnsState {
  return { ...state, changes: state.changes.filter((c) => c.path !== p) };
}

function putRecord(state: DnsState, rec: ChangeRecord): DnsState {
  return { ...state, changes: [...state.changes.filter((c) => c.path !== rec.path), rec] };
}

/** The change record of one apply, saved to `file` before each change it describes. */
export class Journal {
  constructor(
    readonly file: string,
    private state: DnsState,
    private readonly now: () => number,
  ) {}

  async record(change: Change): Promise<void> {
    await this.save(recordChange(this.state, change, this.now()));
  }

  /** After a failed change was rolled back to `before`. */
  async revert(p: string, before: FileState): Promise<void> {
    const next = revertChange(this.state, p, before);
    if (next) await this.save(next);
  }

  async drop(p: string): Promise<void> {
    await this.save(forgetChange(this.state, p));
  }

  async setResolver(r: DnsState['resolver']): Promise<void> {
    await this.save({ ...this.state, ...(r ? { resolver: r } : {}) });
  }

  private async save(next: DnsState): Promise<void> {
    this.state = next;
    await writeDnsState(this.file, this.state);
  }
}

/**
 * restored: the original is back (a file, or a symlink); removed: the path did not exist before,
 * so it is gone again; removed-block: the file was edited since, only the agent's lines were
 * taken out; already-original: nothing of the change was there; left-alone: rewritten since.
 */
export type UndoOutcome =
  'restored' | 'removed' | 'removed-block' | 'already-original' | 'left-alone';

/** What undoing a recorded change does to the path, given what is there now. */
export type UndoStep =
  | { readonly step: 'restore-original' }
  | { readonly step: 'already-original' }
  | {
      readonly step: 'remove-block';
      /** The file without the agent's lines, written back with its mode and owner. */
      readonly content: string;
      readonly owner: { readonly mode: number; readonly uid: number; readonly gid: number };
    }
  | { readonly step: 'leave-alone' };

/**
 * Pure: the file as the agent left it gets its original back exactly; a file edited since keeps
 * the edits and loses only the agent's inserted lines; a file that is still the agent's (its
 * header) gets its original back; a file rewritten by something else is left alone.
 */
export function undoStep(cur: FileState, rec: ChangeRecord): UndoStep {
  if (cur.kind === 'file' && sha256(cur.bytes) === rec.writtenSha256) {
    return { step: 'restore-original' };
  }
  if (sameState(cur, loadState(rec.original))) return { step: 'already-original' };
  if (cur.kind === 'file' && rec.block !== undefined) {
    const without = removeBlock(cur.bytes.toString('utf8'), rec.block);
    if (without !== undefined) {
      return {
        step: 'remove-block',
        content: without,
        owner: { mode: cur.mode, uid: cur.uid, gid: cur.gid },
      };
    }
  }
  if (cur.kind === 'file' && isManaged(cur.bytes)) return { step: 'restore-original' };
  return { step: 'leave-alone' };
}

/** Undoes one recorded change (see undoStep) under `root`. */
export async function undoChange(
  root: string,
  rec: ChangeRecord,
  log: Logger,
): Promise<UndoOutcome> {
  const real = under(root, rec.path);
  const step = undoStep(await readFileState(real), rec);
  switch (step.step) {
    case 'restore-original':
      return restoreOriginal(root, rec, log);
    case 'already-original':
      return 'already-original';
    case 'remove-block':
      await writeRegular(real, step.content, { ...step.owner });
      log.info(
        { file: rec.path },
        `${rec.path} was changed since; removed only the lines the agent added`,
      );
      return 'removed-block';
    case 'leave-alone':
      log.warn(
        { file: rec.path },
        `${rec.path} was rewritten since the agent changed it; left as it is`,
      );
      return 'left-alone';
  }
}

async function restoreOriginal(root: string, rec: ChangeRecord, log: Logger): Promise<UndoOutcome> {
  const original = loadState(rec.original);
  await restoreState(under(root, rec.path), original);
  await removeCreatedDirs(rec.createdDirs.map((d) => under(root, d)));
  const outcome = original.kind === 'absent' ? 'removed' : 'restored';
  log.info({ file: rec.path, outcome }, `${outcome} ${rec.path}`);
  return outcome;
}
