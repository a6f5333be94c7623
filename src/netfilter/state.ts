import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from '../lib/atomic-write';
import { ensureDir, readFileSafe } from '../lib/safe-fs';
import { AgentError } from '../lib/errors';
import type { BackendName } from './backend';
import type { IpFamily } from './plan';
import type { RoutingEntry } from './routing';

/**
 * What we changed on the host beyond our own chains, so that clean can undo exactly that:
 * the backend we programmed, nft tables that did not exist before us, and the TPROXY `ip rule`
 * and `ip route` entries we added (never ones that were there already).
 */
export interface CaptureRecord {
  readonly version: 1;
  readonly backend: BackendName | undefined;
  /** IP families that may hold rules of ours (so `apply` can skip reading ip6tables otherwise). */
  readonly families: readonly IpFamily[];
  readonly createdTables: readonly { readonly family: IpFamily; readonly table: string }[];
  readonly routing: readonly RoutingEntry[];
}

export const RECORD_FILE = 'capture.json';

export const EMPTY_RECORD: CaptureRecord = {
  version: 1,
  backend: undefined,
  families: [],
  createdTables: [],
  routing: [],
};

/** What to assume when the record is unreadable: rules of ours may be anywhere. */
const UNKNOWN_RECORD: CaptureRecord = { ...EMPTY_RECORD, families: [4, 6] };

export function recordPath(stateDir: string): string {
  return path.join(stateDir, RECORD_FILE);
}

export async function readRecord(stateDir: string): Promise<CaptureRecord> {
  const r = await readFileSafe(recordPath(stateDir));
  if (!r) return EMPTY_RECORD;
  const text = r.data.toString('utf8');
  try {
    const r = JSON.parse(text) as Partial<CaptureRecord>;
    return {
      version: 1,
      backend: r.backend === 'nft' || r.backend === 'legacy' ? r.backend : undefined,
      families: Array.isArray(r.families) ? r.families : [4, 6],
      createdTables: Array.isArray(r.createdTables) ? r.createdTables : [],
      routing: Array.isArray(r.routing) ? r.routing : [],
    };
  } catch {
    // A record cut short by a crash (it is written without fsync unless it lists routing
    // entries, see writeRecord): look everywhere; routing entries were written durably.
    return UNKNOWN_RECORD;
  }
}

export function sameRecord(a: CaptureRecord, b: CaptureRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Writes the record atomically (temp file + rename). Durably (fsync) only when it lists TPROXY
 * routing entries: losing those would leak an `ip rule`; losing the rest costs nothing (an empty
 * table left behind, one more ip6tables-save). Removes the file when nothing is left to undo.
 */
export async function writeRecord(stateDir: string, r: CaptureRecord): Promise<void> {
  const file = recordPath(stateDir);
  try {
    if (r.families.length === 0 && r.createdTables.length === 0 && r.routing.length === 0) {
      await fs.rm(file, { force: true });
      return;
    }
    await ensureDir(stateDir, 0o755);
    const text = JSON.stringify(r, null, 2) + '\n';
    await atomicWrite(file, text, { mode: 0o644, durable: r.routing.length > 0 });
  } catch (e) {
    if (e instanceof AgentError) throw e;
    throw new AgentError('AGENT_E_IO', `cannot write ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}
