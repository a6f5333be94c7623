import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from '../lib/atomic-write';
import { ensureDir, readFileSafe } from '../lib/safe-fs';
import { AgentError } from '../lib/errors';
import type { SavedFileState } from './files';
import type { ResolverKind } from './resolver';

/**
 * The record of every host file the DNS component changed, kept in the agent's state
 * directory so `dns clean` can undo exactly that. It is written before each change (a
 * write-ahead record): after a crash it may name a change that did not happen, which undo
 * recognises (the file still holds its original) and skips.
 */
export const STATE_FILE = 'dns-state.json';

export interface ChangeRecord {
  /** Host path of the changed file. */
  readonly path: string;
  readonly role: 'drop-in' | 'resolver';
  /** What the path held before the agent first changed it. */
  readonly original: SavedFileState;
  /** sha256 of the bytes the agent last wrote there. */
  readonly writtenSha256: string;
  /** The text the agent inserted into someone else's file, when it inserted rather than wrote. */
  readonly block?: string;
  /** Directories the agent created for the file (host paths, outermost first). */
  readonly createdDirs: readonly string[];
  /** When the agent first changed the path (ISO 8601). */
  readonly since: string;
}

export interface DnsState {
  readonly version: 1;
  /** The resolver setup of the last apply. */
  readonly resolver?: { readonly kind: ResolverKind; readonly reason: string };
  readonly changes: readonly ChangeRecord[];
}

export const EMPTY_STATE: DnsState = { version: 1, changes: [] };

export function statePath(root: string, stateDir: string): string {
  return path.join(root, stateDir, STATE_FILE);
}

export async function readDnsState(file: string): Promise<DnsState | undefined> {
  const r = await readFileSafe(file);
  if (!r) return undefined;
  const body = r.data.toString('utf8');
  try {
    const s = JSON.parse(body) as DnsState;
    if (s.version !== 1 || !Array.isArray(s.changes)) throw new Error('not a version 1 record');
    return s;
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `${file} is not a DNS change record (${(e as Error).message}); move it aside, then check ` +
        '/etc/resolv.conf and the dnsmasq drop-in by hand',
      { cause: e },
    );
  }
}

/** Saves the record, or removes it when no change is left. */
export async function writeDnsState(file: string, s: DnsState): Promise<void> {
  if (s.changes.length === 0) {
    await fs.rm(file, { force: true });
    return;
  }
  await ensureDir(path.dirname(file), 0o755);
  await atomicWrite(file, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
}
