/**
 * What `status` learns about the daemon of a state directory: whether it runs (the kernel holds
 * its `agent.lock`), its live status from the monitoring endpoint named in `status.json`, or,
 * when that does not answer, `status.json` itself judged at the time of reading (a certificate
 * that expired since the file was written is not ready).
 */
import * as http from 'node:http';
import type { AgentStatus } from '../agent';
import { DEFAULT_STATE_DIR, readRaw } from '../config/index';
import { isoTime } from '../lib/duration';
import { AGENT_LOCK, lockHolder } from '../lib/lock';
import { readStatusFile } from '../observe/index';
import { judge } from '../readiness';

export interface DaemonView {
  /** A daemon holds the state directory's agent.lock. */
  readonly running: boolean;
  /** Its pid, as it wrote it into the lock. */
  readonly pid: number | undefined;
  /** Where `status` comes from: the live endpoint, the status file, or nothing at all. */
  readonly source: 'endpoint' | 'file' | 'none';
  /** The status (for `file`, judged at `now`); undefined when there is none. */
  readonly status: AgentStatus | undefined;
  /** When the status file was written (ms), for `file`. */
  readonly writtenAt: number | undefined;
  /** Why the endpoint was not used, when it was not. */
  readonly note: string | undefined;
}

/** How long `status` waits for the endpoint. */
export const ASK_TIMEOUT_MS = 2_000;
const MAX_BODY_BYTES = 1 << 20;

/**
 * The state directory `status` looks at when none is given: ISTIO_AGENT_STATE_DIR from the
 * environment and the configuration files, read leniently: a file that is bad for `run`
 * (exit 78) does not stop `status`, which then goes by the environment and the default.
 */
export async function locateStateDir(env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { raw } = await readRaw(env);
    return raw.str('ISTIO_AGENT_STATE_DIR', DEFAULT_STATE_DIR);
  } catch {
    return env.ISTIO_AGENT_STATE_DIR || DEFAULT_STATE_DIR;
  }
}

/** A status read from the file, judged at `now`: expiries since it was written count. */
export function judgeAt(st: AgentStatus, now: number): AgentStatus {
  if (st.state !== 'ready' && st.state !== 'degraded') return st;
  const v = judge(st.components, st.reload?.refused, now);
  return {
    ...st,
    state: v.ready ? 'ready' : 'degraded',
    ready: v.ready,
    notReady: v.notReady,
  };
}

export async function askDaemon(stateDir: string, now: () => number): Promise<DaemonView> {
  const lock = await lockHolder(stateDir, AGENT_LOCK);
  const file = await readStatusFile(stateDir);
  const stored = file?.status as AgentStatus | undefined;
  const running = lock?.held ?? false;
  const pid = running ? lock?.pid : (lock?.pid ?? stored?.pid);
  const base = { running, pid, writtenAt: file?.writtenAt };
  if (!running)
    return { ...base, source: stored ? 'file' : 'none', status: stored, note: undefined };
  const address = stored?.daemon?.monitoring;
  let note: string | undefined;
  if (stored && stored.pid !== lock?.pid) {
    note = `status.json is from pid ${stored.pid}, not from the running pid ${lock?.pid ?? '?'} (still starting?)`;
  } else if (typeof address === 'string') {
    try {
      const live = (await getJson(`http://${address}/debug/status`)) as AgentStatus;
      if (live.pid === lock?.pid)
        return { ...base, source: 'endpoint', status: live, note: undefined };
      note = `http://${address} answers for pid ${live.pid}, not for the agent of ${stateDir}`;
    } catch (e) {
      note = `the monitoring endpoint http://${address} did not answer (${(e as Error).message})`;
    }
  } else if (stored) {
    note = 'the monitoring endpoint is off (ISTIO_AGENT_MONITORING_ADDR=off)';
  }
  if (!stored || stored.pid !== lock?.pid)
    return { ...base, source: 'none', status: undefined, note };
  return {
    ...base,
    source: 'file',
    status: judgeAt(stored, now()),
    note: `${note ?? 'no endpoint'}; the status file of ${isoTime(file!.writtenAt)} judged now`,
  };
}

/** GET of a small JSON document on loopback, bounded in time and size. */
function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: ASK_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (b: Buffer) => {
        size += b.length;
        if (size > MAX_BODY_BYTES) req.destroy(new Error('answer too large'));
        else chunks.push(b);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`HTTP ${res.statusCode ?? '?'}`));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ASK_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}
