import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from '../lib/atomic-write';
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
  readonly createdTables: readonly { readonly family: IpFamily; readonly table: string }[];
  readonly routing: readonly RoutingEntry[];
}

export const RECORD_FILE = 'capture.json';

export const EMPTY_RECORD: CaptureRecord = {
  version: 1,
  backend: undefined,
  createdTables: [],
  routing: [],
};

export function recordPath(stateDir: string): string {
  return path.join(stateDir, RECORD_FILE);
}

export async function readRecord(stateDir: string): Promise<CaptureRecord> {
  let text: string;
  try {
    text = await fs.readFile(recordPath(stateDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_RECORD;
    throw new AgentError(
      'AGENT_E_IO',
      `cannot read ${recordPath(stateDir)}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  try {
    const r = JSON.parse(text) as Partial<CaptureRecord>;
    return {
      version: 1,
      backend: r.backend === 'nft' || r.backend === 'legacy' ? r.backend : undefined,
      createdTables: Array.isArray(r.createdTables) ? r.createdTables : [],
      routing: Array.isArray(r.routing) ? r.routing : [],
    };
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `${recordPath(stateDir)} is not valid JSON; remove it after checking \`ip rule\``,
      { cause: e },
    );
  }
}

export function sameRecord(a: CaptureRecord, b: CaptureRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export async function writeRecord(stateDir: string, r: CaptureRecord): Promise<void> {
  try {
    if (r.createdTables.length === 0 && r.routing.length === 0) {
      await fs.rm(recordPath(stateDir), { force: true });
      return;
    }
    await fs.mkdir(stateDir, { recursive: true, mode: 0o755 });
    await atomicWrite(recordPath(stateDir), JSON.stringify(r, null, 2) + '\n', { mode: 0o644 });
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `cannot write ${recordPath(stateDir)}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}
