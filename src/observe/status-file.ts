/**
 * `status.json` in the state directory, in one place: the daemon's last status, rewritten at each
 * change, and the address of its monitoring endpoint. `status` reads it when the endpoint does
 * not answer (or is off), and to find the endpoint.
 */
import * as path from 'node:path';
import { atomicWrite } from '../lib/atomic-write';
import { AgentError } from '../lib/errors';
import { ensureDir, readFileSafe } from '../lib/safe-fs';

export const STATUS_FILE = 'status.json';

export function statusFilePath(stateDir: string): string {
  return path.join(stateDir, STATUS_FILE);
}

/** Replaces the file in one step; not fsynced (the next change rewrites it, a crash loses nothing). */
export async function writeStatusFile(file: string, status: unknown): Promise<void> {
  await ensureDir(path.dirname(file), 0o755);
  await atomicWrite(file, JSON.stringify(status, null, 2) + '\n', { mode: 0o644, durable: false });
}

/**
 * The status last written in `stateDir`, and when; undefined when there is none. Read without
 * following a symlink, bounded; anything but a JSON object is AGENT_E_IO naming the file.
 */
export async function readStatusFile(
  stateDir: string,
): Promise<{ readonly status: Record<string, unknown>; readonly writtenAt: number } | undefined> {
  const file = statusFilePath(stateDir);
  const r = await readFileSafe(file);
  if (!r) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(r.data.toString('utf8'));
  } catch (e) {
    throw new AgentError('AGENT_E_IO', `${file} is not JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new AgentError('AGENT_E_IO', `${file} does not hold a status object`);
  return { status: v as Record<string, unknown>, writtenAt: r.stat.mtimeMs };
}
