import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { atomicSymlink, atomicWrite, fsyncDir } from '../lib/atomic-write';
import { readFileSafe } from '../lib/safe-fs';

/**
 * What a path held, read with lstat: enough to put it back byte for byte (content, mode, owner,
 * or a symlink's target). Paths here are host paths ("/etc/resolv.conf"); `under(root, p)` maps
 * them into the directory the agent operates on ("/" in production, a temp dir in tests).
 */
export type FileState =
  | { readonly kind: 'absent' }
  | {
      readonly kind: 'file';
      readonly bytes: Buffer;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  | { readonly kind: 'symlink'; readonly target: string };

/** A FileState as JSON: bytes as UTF-8 text when they are valid UTF-8, else base64. */
export type SavedFileState =
  | { readonly kind: 'absent' }
  | {
      readonly kind: 'file';
      readonly encoding: 'utf8' | 'base64';
      readonly data: string;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    }
  | { readonly kind: 'symlink'; readonly target: string };

export const ABSENT: FileState = { kind: 'absent' };

export function under(root: string, hostPath: string): string {
  return path.join(root, hostPath);
}

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function text(s: FileState): string | undefined {
  return s.kind === 'file' ? s.bytes.toString('utf8') : undefined;
}

export async function readFileState(realPath: string): Promise<FileState> {
  let st;
  try {
    st = await fs.lstat(realPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ABSENT;
    throw e;
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: await fs.readlink(realPath) };
  if (!st.isFile()) throw new Error(`${realPath} is neither a file nor a symlink`);
  // Read from one descriptor opened without following a symlink: what was lstat'ed above may
  // have been replaced since.
  const r = await readFileSafe(realPath);
  if (!r) return ABSENT;
  return {
    kind: 'file',
    bytes: r.data,
    mode: r.stat.mode & 0o7777,
    uid: r.stat.uid,
    gid: r.stat.gid,
  };
}

/**
 * Follows `hostPath` through symlinks (up to 8), each absolute target taken relative to `root`,
 * and returns the final state and host path. A dangling link ends in `absent`.
 */
export async function readFollowing(
  root: string,
  hostPath: string,
): Promise<{ hostPath: string; state: FileState }> {
  let p = hostPath;
  for (let i = 0; i < 8; i++) {
    const s = await readFileState(under(root, p));
    if (s.kind !== 'symlink') return { hostPath: p, state: s };
    p = path.isAbsolute(s.target) ? path.normalize(s.target) : path.join(path.dirname(p), s.target);
  }
  return { hostPath: p, state: ABSENT };
}

export function saveState(s: FileState): SavedFileState {
  if (s.kind !== 'file') return s;
  const utf8 = s.bytes.toString('utf8');
  const exact = Buffer.from(utf8, 'utf8').equals(s.bytes);
  return {
    kind: 'file',
    encoding: exact ? 'utf8' : 'base64',
    data: exact ? utf8 : s.bytes.toString('base64'),
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
  };
}

export function loadState(s: SavedFileState): FileState {
  if (s.kind !== 'file') return s;
  return {
    kind: 'file',
    bytes: Buffer.from(s.data, s.encoding),
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
  };
}

export function sameState(a: FileState, b: FileState): boolean {
  if (a.kind === 'absent' || b.kind === 'absent') return a.kind === b.kind;
  if (a.kind === 'symlink' || b.kind === 'symlink') {
    return a.kind === 'symlink' && b.kind === 'symlink' && a.target === b.target;
  }
  return a.bytes.equals(b.bytes);
}

/** Creates the missing parents of `realPath`; returns the ones it created, outermost first. */
export async function ensureParents(realPath: string): Promise<string[]> {
  const missing: string[] = [];
  let d = path.dirname(realPath);
  for (;;) {
    try {
      await fs.stat(d);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      missing.unshift(d);
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  for (const m of missing) await fs.mkdir(m, { mode: 0o755 });
  return missing;
}

/** Writes a regular file atomically (replacing a symlink at that path, not its target). */
export async function writeRegular(
  realPath: string,
  bytes: Uint8Array | string,
  owner: { mode: number; uid?: number; gid?: number },
): Promise<void> {
  await atomicWrite(realPath, bytes, owner);
}

/** Puts `state` back at `realPath` exactly: content, mode and owner; or the link; or nothing. */
export async function restoreState(realPath: string, state: FileState): Promise<void> {
  if (state.kind === 'absent') {
    await fs.rm(realPath, { force: true });
    await fsyncDir(path.dirname(realPath)).catch(() => undefined);
    return;
  }
  if (state.kind === 'file') {
    await atomicWrite(realPath, state.bytes, { mode: state.mode, uid: state.uid, gid: state.gid });
    return;
  }
  await atomicSymlink(state.target, realPath);
}

/** Removes directories the agent created, innermost first, while they are empty. */
export async function removeCreatedDirs(realDirs: readonly string[]): Promise<void> {
  for (const d of [...realDirs].reverse()) {
    try {
      await fs.rmdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      return; // not empty: something else lives there now, so it and its parents stay
    }
  }
}
