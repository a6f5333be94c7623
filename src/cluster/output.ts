/**
 * Files the cluster commands write on the workstation: certificates, keys, env files, bundles.
 * Never through a symlink, never over a different file without `--force`, and idempotent: the
 * same content with the same mode is left alone. New files are created with
 * O_CREAT|O_EXCL|O_NOFOLLOW and their final mode; a forced replacement is an atomic rename
 * (src/lib/atomic-write.ts), which replaces a symlink rather than following it.
 */
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { atomicWrite, fsyncDir } from '../lib/atomic-write';
import { AgentError } from '../lib/errors';

export interface OutFile {
  /** A plain file name inside the output directory. */
  readonly name: string;
  readonly content: string | Uint8Array;
  readonly mode: number;
}

export type WriteOutcome = 'created' | 'replaced' | 'unchanged';

/** Larger existing files are not read to compare; they count as different. */
const MAX_COMPARE_BYTES = 1 << 20;

function outputError(msg: string, cause?: unknown): AgentError {
  return new AgentError('AGENT_E_CLUSTER_OUTPUT', msg, cause === undefined ? {} : { cause });
}

/**
 * Makes `dir` (mode `mode`, parents as needed) or checks the existing one: a directory, not a
 * symlink to one. With `exactMode` an existing directory is set to `mode` (a bundle's 0700).
 */
export async function prepareDir(dir: string, mode: number, exactMode = false): Promise<void> {
  try {
    const st = await fs.lstat(dir);
    if (st.isSymbolicLink()) {
      throw outputError(
        `${dir} is a symlink; give the real directory (nothing is written through a symlink)`,
      );
    }
    if (!st.isDirectory()) throw outputError(`${dir} exists and is not a directory`);
    if (exactMode && (st.mode & 0o7777) !== mode) await fs.chmod(dir, mode);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (e instanceof AgentError) throw e;
      throw outputError(`cannot use ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, e);
    }
  }
  await fs.mkdir(path.dirname(dir), { recursive: true });
  try {
    await fs.mkdir(dir, { mode });
  } catch (e) {
    throw outputError(`cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, e);
  }
  await fs.chmod(dir, mode); // the umask may have taken bits away
}

type Existing =
  | { kind: 'absent' }
  | { kind: 'symlink' }
  | { kind: 'other' }
  | { kind: 'file'; content: Buffer | undefined; mode: number };

async function inspect(file: string): Promise<Existing> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    if (code === 'ELOOP') return { kind: 'symlink' };
    throw outputError(`cannot read ${file}: ${code ?? String(e)}`, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { kind: 'other' };
    const content = st.size <= MAX_COMPARE_BYTES ? await fh.readFile() : undefined;
    return { kind: 'file', content, mode: st.mode & 0o7777 };
  } finally {
    await fh.close();
  }
}

function sameBytes(a: Buffer | undefined, b: string | Uint8Array): boolean {
  return a !== undefined && a.equals(typeof b === 'string' ? Buffer.from(b) : Buffer.from(b));
}

async function createExclusive(file: string, f: OutFile): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(
      file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      f.mode,
    );
  } catch (e) {
    throw outputError(
      `cannot create ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      e,
    );
  }
  try {
    await fh.chmod(f.mode);
    await fh.writeFile(f.content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes the files into `dir` (which prepareDir made or checked). Every file is looked at first:
 * if one would overwrite something different (or is a symlink, or not a regular file) and
 * `force` is off, nothing is written and the error lists them all.
 */
export async function writeFiles(
  dir: string,
  files: readonly OutFile[],
  force: boolean,
): Promise<Record<string, WriteOutcome>> {
  const plans: { f: OutFile; file: string; action: WriteOutcome }[] = [];
  const refused: string[] = [];
  for (const f of files) {
    if (f.name.includes('/') || f.name === '..' || f.name === '.') {
      throw new AgentError('AGENT_E_INTERNAL', `bad output file name ${f.name}`);
    }
    const file = path.join(dir, f.name);
    const ex = await inspect(file);
    if (ex.kind === 'absent') plans.push({ f, file, action: 'created' });
    else if (ex.kind === 'other') refused.push(`${file} is not a regular file`);
    else if (ex.kind === 'file' && sameBytes(ex.content, f.content) && ex.mode === f.mode)
      plans.push({ f, file, action: 'unchanged' });
    else if (force) plans.push({ f, file, action: 'replaced' });
    else if (ex.kind === 'symlink') refused.push(`${file} is a symlink`);
    else refused.push(`${file} exists with other content or mode`);
  }
  if (refused.length > 0) {
    throw outputError(
      `${refused.join('; ')}; nothing was written${refused.some((r) => r.endsWith('not a regular file')) ? '' : ' (--force replaces them, never through a symlink)'}`,
    );
  }
  const out: Record<string, WriteOutcome> = {};
  for (const p of plans) {
    if (p.action === 'created') await createExclusive(p.file, p.f);
    else if (p.action === 'replaced') await atomicWrite(p.file, p.f.content, { mode: p.f.mode });
    out[p.f.name] = p.action;
  }
  if (plans.some((p) => p.action !== 'unchanged')) await fsyncDir(dir);
  return out;
}
