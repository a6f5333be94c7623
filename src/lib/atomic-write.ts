import { constants as C, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir, resolveTrusted, type TrustOptions } from './safe-fs';
import { AgentError } from './errors';

export { fsyncDir } from './safe-fs';

export interface AtomicWriteOptions extends TrustOptions {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  /** fsync the file and the directory (default true); false where losing the write is harmless. */
  readonly durable?: boolean;
}

/** O_CREAT|O_EXCL never follows a symlink; O_NOFOLLOW says so twice. */
const CREATE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/**
 * Writes `data` to `file` so that a reader, or a crash at any instant, sees either the old
 * content or the new, never a mix: a new temp file (O_CREAT|O_EXCL|O_NOFOLLOW) in the same
 * directory, fsynced, renamed over the target, then the directory fsynced so the rename itself
 * is durable. The directory must be trusted (safe-fs.ts): writable by no one but a trusted user,
 * on a path no one else can change; otherwise AGENT_E_UNSAFE_PATH and nothing is written.
 */
export async function atomicWrite(
  file: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const resolved = await resolveTrusted(path.dirname(file), options);
  if (!resolved.stat?.isDirectory()) {
    throw new AgentError(
      'AGENT_E_IO',
      `cannot write ${file}: ${resolved.missingFrom ?? path.dirname(file)} does not exist`,
    );
  }
  const dir = resolved.real;
  const target = path.join(dir, path.basename(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const durable = options.durable ?? true;
  await writeNewFile(tmp, data, options);
  try {
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  if (durable) await fsyncDir(dir);
}

export interface NewFileOptions {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  /** fsync the file (default true). */
  readonly durable?: boolean;
}

/**
 * Creates `file`, which must not exist (O_CREAT|O_EXCL|O_NOFOLLOW: never through a symlink,
 * never over a file someone put there), writes `data`, sets its mode and owner, and fsyncs it;
 * on failure the file is removed. A building block for a write that is published by a rename
 * (atomicWrite, or a whole directory as the certificate store does); the caller fsyncs the
 * directory after that rename.
 */
export async function writeNewFile(
  file: string,
  data: string | Uint8Array,
  options: NewFileOptions = {},
): Promise<void> {
  const fh = await fs.open(file, CREATE_FLAGS, options.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    if (options.mode !== undefined) await fh.chmod(options.mode);
    if (options.uid !== undefined && options.gid !== undefined)
      await fh.chown(options.uid, options.gid);
    if (options.durable ?? true) await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.rm(file, { force: true });
    throw e;
  }
  await fh.close();
}

export interface SymlinkOptions {
  /** The temporary name to make the link under (default `.<name>.<random>.lnk` beside it). */
  readonly tmp?: string;
  /** fsync the directory afterwards (default true); false when the caller does, once for several. */
  readonly durable?: boolean;
}

/**
 * Points `link` at `target` in one step, replacing what is there (a file or a link, never
 * followed): a symlink made under a temporary name in the same directory (symlink(2) fails if
 * that name exists, so it is ours), renamed over `link`, then the directory fsynced.
 */
export async function atomicSymlink(
  target: string,
  link: string,
  options: SymlinkOptions = {},
): Promise<void> {
  const dir = path.dirname(link);
  const tmp =
    options.tmp ?? path.join(dir, `.${path.basename(link)}.${randomBytes(6).toString('hex')}.lnk`);
  await fs.symlink(target, tmp);
  try {
    await fs.rename(tmp, link);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  if (options.durable ?? true) await fsyncDir(dir);
}
