/** Shared pieces of the sidecar tests: the doubles, ports, what the doubles recorded, waiting. */
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpDir, type Teardown } from './tmp';

export const DOUBLES = path.resolve(__dirname, '../doubles');
export const FAKE_ENVOY = path.join(DOUBLES, 'fake-envoy.cjs');
export const FAKE_PILOT_AGENT = path.join(DOUBLES, 'fake-pilot-agent.cjs');
export const isRoot = process.getuid?.() === 0;
/** The user the sidecar runs as in root tests: exists everywhere, never a login. */
export const CHILD_USER = 'nobody';

/**
 * Under tap, @tapjs/processinfo hooks child_process so every Node child (our doubles included)
 * loads its recorder, which writes to .tap/processinfo at exit. Doubles running as `nobody` need
 * that directory writable, or they print an EACCES stack on exit. Test-only.
 */
export function openTapProcessInfo(): void {
  if (!isRoot) return;
  const dir = path.resolve(__dirname, '../../.tap/processinfo');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o1777);
}

/** An ISTIO_BIN_BASE holding the named doubles as `envoy` / `pilot-agent`, removed when `t` ends. */
export function binBase(t: Teardown, which: readonly ('envoy' | 'pilot-agent')[]): string {
  const d = tmpDir(t, 'sidecar-bin-');
  for (const w of which)
    symlinkSync(w === 'envoy' ? FAKE_ENVOY : FAKE_PILOT_AGENT, path.join(d, w));
  return d;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

export interface ProcRecord {
  readonly program: 'envoy' | 'pilot-agent';
  readonly pid: number;
  readonly ppid: number;
  /** Date.now() when the double started. */
  readonly startedAt: number;
  readonly argv: string[];
  readonly epoch?: number;
  readonly uid: number;
  readonly gid: number;
  /** The Groups: line of /proc/self/status (supplementary groups). */
  readonly groups: string;
  readonly uidLine?: string;
  readonly gidLine?: string;
  readonly capAmb?: string;
  readonly nsPid?: string;
  readonly env: Record<string, string | undefined>;
  readonly flags?: Record<string, string>;
  readonly node?: unknown;
}

/**
 * What the doubles recorded about themselves, in start order. `pid` is the pid as this test sees
 * it (the first NSpid entry: inside a PID namespace the double's own pid is 1 or 2).
 */
export function records(dir: string): ProcRecord[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      const r = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as ProcRecord & {
        startedAt: number;
      };
      const outer = r.nsPid?.trim().split(/\s+/)[0];
      return { ...r, pid: outer ? Number(outer) : r.pid };
    })
    .sort((a, b) => a.startedAt - b.startedAt || a.pid - b.pid);
}

/** True while `pid` is a live process (a zombie counts as dead). */
export function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `cond` in real time until true (or throws after `timeoutMs`). With a FakeClock, advances
 * it by `step` between polls, so timers of the code under test fire as time "passes".
 */
export async function waitFor(
  what: string,
  cond: () => boolean,
  opts: { timeoutMs?: number; advance?: (ms: number) => Promise<void>; step?: number } = {},
): Promise<void> {
  const end = Date.now() + (opts.timeoutMs ?? 15_000);
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    if (opts.advance) await opts.advance(opts.step ?? 50);
    await sleep(20);
  }
}

/** Test cleanup: SIGKILLs any recorded double still alive (only after a failed test). */
export function killRecorded(recordDir: string): void {
  let recs: ProcRecord[] = [];
  try {
    recs = records(recordDir);
  } catch {
    return;
  }
  for (const r of recs) {
    if (!alive(r.pid)) continue;
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
