import { spawn } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { AgentError } from './errors';
import { ensureDir, readFileSafe } from './safe-fs';

/**
 * Advisory locks in the agent's state directory (ISTIO_AGENT_STATE_DIR), flock(2) semantics:
 * the kernel drops a lock when the last descriptor of its open file goes away, so a crashed or
 * SIGKILLed holder never leaves a stale lock, and a reused pid cannot fake one.
 *
 * Node has no flock(2) and the package has no native addons, so `flock(1)` (util-linux, which
 * Debian marks Essential) takes the lock on a descriptor we open and pass to it as its fd 3. A
 * flock lock belongs to the open file description, which the child shares with us: when the
 * child exits, we still hold it, until we close our descriptor or the process ends. Our
 * descriptor is close-on-exec (libuv opens everything so), so no other child inherits it.
 * docs/decisions.md has the alternatives and why not.
 *
 * Three lock files, one mechanism:
 * - `agent.lock`: held by a daemon (`run`, `dev`) for its whole life; a second daemon on the same
 *   state directory refuses to start (AGENT_E_ALREADY_RUNNING).
 * - `capture.lock` and `dns.lock` (host locks): held around every read-plan-apply of capture,
 *   and of DNS, by the daemon's components and by `iptables apply|clean`, and `dns apply|clean`;
 *   another change of the same kind waits (AGENT_E_LOCK_TIMEOUT after HOST_LOCK_WAIT_MS). Capture
 *   and DNS change different things (netfilter; dnsmasq's drop-in and the resolver) and keep
 *   different records, so one does not wait for the other: the daemon's start runs them side by
 *   side, and a dnsmasq restart no longer holds up the rules.
 */

export const AGENT_LOCK = 'agent.lock';
/** The host lock of each kind of host change, by the kind. */
export const HOST_LOCKS = { capture: 'capture.lock', dns: 'dns.lock' } as const;
export type HostChange = keyof typeof HOST_LOCKS;
/** How long a capture or DNS change waits for another one of its kind to finish. */
export const HOST_LOCK_WAIT_MS = 120_000;
/** flock(1)'s exit code when the lock is held (or the wait timed out): EX_TEMPFAIL. */
const CONFLICT = 75;

const open = promisify(fs.open);
const close = promisify(fs.close);
const fstat = promisify(fs.fstat);
const ftruncate = promisify(fs.ftruncate);
const write = promisify(fs.write);
const read = promisify(fs.read);

export interface Lock {
  readonly file: string;
  /** Drops the lock (closes our descriptor). Safe to call more than once. */
  release(): Promise<void>;
}

export interface LockOptions {
  /** Who takes it, recorded next to the pid for whoever finds it held: "istio-node-agent run". */
  readonly holder: string;
  /** Wait this long for a holder to let go; undefined = do not wait. */
  readonly waitMs?: number;
  /** Gives up waiting (AGENT_E_LOCK_TIMEOUT) when this aborts. */
  readonly signal?: AbortSignal;
  /** What waits, for the message when the wait runs out: "capture change". */
  readonly what?: string;
}

/** Takes lock `name` in `dir` (the state directory), waiting as `opts` say. */
export async function acquireLock(dir: string, name: string, opts: LockOptions): Promise<Lock> {
  // Made 0755 by the agent, or checked: no one else may change it or the path to it.
  await ensureDir(dir, 0o755);
  const file = path.join(dir, name);
  let fd: number;
  try {
    // Never through a symlink; never blocking on something that is not a regular file.
    fd = await open(
      file,
      constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK,
      0o644,
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AgentError(
      code === 'ELOOP' ? 'AGENT_E_UNSAFE_PATH' : 'AGENT_E_IO',
      `cannot open the lock file ${file}: ${code === 'ELOOP' ? 'it is a symlink; remove it' : (e as Error).message}`,
      { cause: e },
    );
  }
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await close(fd).catch(() => undefined);
  };
  try {
    const st = await fstat(fd);
    if (!st.isFile())
      throw new AgentError(
        'AGENT_E_UNSAFE_PATH',
        `the lock file ${file} is not a regular file; remove it`,
      );
    const code = await runFlock(fd, opts);
    if (code === CONFLICT) {
      const who = await recordedHolder(fd);
      const held = who ? `held by ${who}` : 'held by another process';
      if (opts.waitMs === undefined) {
        throw new AgentError(
          'AGENT_E_ALREADY_RUNNING',
          `another agent runs on the state directory ${dir} (${file} ${held}); stop it first, or give this one its own ISTIO_AGENT_STATE_DIR`,
          { details: { file, holder: who } },
        );
      }
      throw new AgentError(
        'AGENT_E_LOCK_TIMEOUT',
        opts.signal?.aborted
          ? `stopped while waiting for ${file} (${held})`
          : `${file} is ${held} and was not let go within ${Math.round(opts.waitMs / 1000)} s; another ${opts.what ?? 'change'} is under way, try again once it is done`,
        { details: { file, holder: who } },
      );
    }
    // Ours now: say who holds it, for the next one that finds it held.
    const text = `${process.pid} ${opts.holder}\n`;
    await ftruncate(fd, 0);
    await write(fd, text, 0, 'utf8');
  } catch (e) {
    await release();
    throw e;
  }
  return { file, release };
}

/** Runs `fn` holding the host lock of `stateDir` for changes of kind `kind`. */
export async function withHostLock<T>(
  stateDir: string,
  kind: HostChange,
  holder: string,
  fn: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const lock = await acquireLock(stateDir, HOST_LOCKS[kind], {
    holder,
    waitMs: HOST_LOCK_WAIT_MS,
    what: kind === 'dns' ? 'DNS change' : 'capture change',
    ...(signal ? { signal } : {}),
  });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** `flock` on our descriptor (its fd 3): 0 = ours, CONFLICT = held (or the wait ran out). */
function runFlock(fd: number, opts: LockOptions): Promise<number> {
  const how =
    opts.waitMs === undefined ? ['--nonblock'] : ['--wait', (opts.waitMs / 1000).toFixed(3)];
  return new Promise((resolve, reject) => {
    const child = spawn(
      'flock',
      ['--exclusive', ...how, '--conflict-exit-code', String(CONFLICT), '3'],
      {
        stdio: ['ignore', 'ignore', 'pipe', fd],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const onAbort = (): void => {
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: NodeJS.ErrnoException) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(
        e.code === 'ENOENT'
          ? new AgentError(
              'AGENT_E_MISSING_TOOL',
              'flock (util-linux) is needed for the state directory lock; install util-linux',
              { cause: e },
            )
          : new AgentError('AGENT_E_EXEC', `cannot run flock: ${e.message}`, { cause: e }),
      );
    });
    child.on('close', (code) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (code === 0 || code === CONFLICT) resolve(code);
      else if (opts.signal?.aborted) resolve(CONFLICT);
      else
        reject(
          new AgentError(
            'AGENT_E_EXEC',
            `flock exited ${code ?? 'on a signal'}: ${stderr.trim() || 'no output'}`,
          ),
        );
    });
  });
}

/** "pid 1234 (istio-node-agent run)" from the lock file, when that process still exists. */
async function recordedHolder(fd: number): Promise<string | undefined> {
  const buf = Buffer.alloc(256);
  const { bytesRead } = await read(fd, buf, 0, buf.length, 0).catch(() => ({ bytesRead: 0 }));
  const m = /^(\d+) ([^\n]*)/.exec(buf.subarray(0, bytesRead).toString('utf8'));
  if (!m) return undefined;
  const alive = await fsp.stat(`/proc/${m[1]}`).then(
    () => true,
    () => false,
  );
  return alive ? `pid ${m[1]} (${m[2]})` : undefined;
}

/** Who holds a lock, as far as can be seen without touching it. */
export interface LockHolder {
  /** A live process holds it: the kernel lists the lock (/proc/locks), or (where it hides it) the pid written into the file is a live istio-node-agent. */
  readonly held: boolean;
  /** The pid and command the last holder wrote into the file. */
  readonly pid: number | undefined;
  readonly holder: string | undefined;
}

/**
 * Whether `pid` is a live istio-node-agent process: the fallback when /proc/locks does not show
 * the lock. It shows a flock under the pid that took it, and flock(1) took ours and exited; in
 * the initial PID namespace the kernel still prints that pid, in any other (a container, where
 * `status` runs beside the daemon) it hides the line. The pid the daemon wrote, alive and
 * running this program, is then what tells.
 */
async function isAgentProcess(pid: number | undefined): Promise<boolean> {
  if (pid === undefined) return false;
  const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return isAgentCommandLine(cmdline);
}

/** A /proc/PID/cmdline (NUL-separated) of istio-node-agent (the binary, or node running its bundle or source). Pure. */
export function isAgentCommandLine(cmdline: string): boolean {
  return cmdline
    .split('\0')
    .slice(0, 4)
    .some((arg) => /(^|\/)istio-node-agent(\.cjs)?$|(^|\/)src\/main\.ts$/.test(arg));
}

/**
 * The `major:minor:inode` of every file with a granted lock in /proc/locks text (waiters, the
 * `->` lines, hold nothing). Pure.
 */
export function lockedFiles(procLocks: string): Set<string> {
  const out = new Set<string>();
  for (const line of procLocks.split('\n')) {
    const m = /^\d+:\s+(?!->)\S+\s+\S+\s+\S+\s+-?\d+\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m) out.add(`${parseInt(m[1]!, 16)}:${parseInt(m[2]!, 16)}:${m[3]!}`);
  }
  return out;
}

/** `major:minor:inode` of a stat's device and inode (glibc's dev_t encoding). */
export function fileId(dev: bigint, ino: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}:${ino}`;
}

/**
 * Whether lock `name` in `dir` is held, read without taking it (taking it, even shared and for
 * a moment, could make a daemon starting at that instant refuse to run): the kernel's table of
 * locks (/proc/locks) against the file's device and inode, and the pid the holder wrote.
 * undefined when the lock file does not exist (no daemon ever ran here).
 */
export async function lockHolder(dir: string, name: string): Promise<LockHolder | undefined> {
  const file = path.join(dir, name);
  let st: fs.BigIntStats;
  try {
    st = await fsp.lstat(file, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('AGENT_E_IO', `cannot read ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  // Never through a symlink, never blocking on a FIFO, a few bytes at most.
  const text = st.isFile()
    ? await readFileSafe(file, { maxBytes: 4096 }).then(
        (r) => r?.data.toString('utf8') ?? '',
        () => '',
      )
    : '';
  const m = /^(\d+) ([^\n]*)/.exec(text);
  const pid = m ? Number(m[1]) : undefined;
  let inTable: boolean | undefined;
  try {
    inTable = lockedFiles(await fsp.readFile('/proc/locks', 'utf8')).has(fileId(st.dev, st.ino));
  } catch {
    inTable = undefined; // no /proc/locks
  }
  const held = st.isFile() && (inTable === true || (await isAgentProcess(pid)));
  return { held, pid, holder: m?.[2] };
}
