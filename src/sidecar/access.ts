/**
 * Whether EXEC_USER can reach a file: the sidecar runs with only its uid and primary gid (no
 * supplementary groups), so the classic owner/group/other bits decide. Checked before envoy is
 * started, so a 0700 directory shows up as one clear error instead of a crash loop.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export interface Ids {
  readonly uid: number;
  readonly gid: number;
}

export interface ModeOwner {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** `bit` 4 = read, 2 = write, 1 = execute/search. Root passes everything but execute-less files. */
export function permits(st: ModeOwner, who: Ids, bit: 4 | 2 | 1): boolean {
  if (who.uid === 0) return true;
  if (st.uid === who.uid) return (st.mode & (bit << 6)) !== 0;
  if (st.gid === who.gid) return (st.mode & (bit << 3)) !== 0;
  return (st.mode & bit) !== 0;
}

/**
 * The first path that stops `who` from reading `file` (a directory it cannot search, or the file
 * itself), with its mode and owner; undefined when readable, or when something does not exist
 * (other checks report missing files).
 */
export async function unreadableBy(file: string, who: Ids): Promise<string | undefined> {
  const abs = path.resolve(file);
  const parts = abs.split(path.sep).filter((p) => p !== '');
  let cur: string = path.sep;
  for (let i = 0; i <= parts.length; i++) {
    const last = i === parts.length;
    let st;
    try {
      st = await fs.stat(cur);
    } catch {
      return undefined;
    }
    const ok = last ? permits(st, who, 4) : permits(st, who, 1);
    if (!ok)
      return `${cur} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${st.uid}:${st.gid})`;
    if (!last) cur = path.join(cur, parts[i]!);
  }
  return undefined;
}
