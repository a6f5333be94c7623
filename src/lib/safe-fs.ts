/**
 * How the agent, running as root, touches files that other users might influence. The rules
 * (docs/operations.md, "Security model"):
 *
 * - A path is trusted when every directory on it, every symlink followed on the way and the
 *   final entry are owned by a trusted user (root, or the agent's own user when it is not root)
 *   and none of them is writable by group or others. An intermediate directory that others may
 *   write is accepted only with the sticky bit (as /tmp), because then no one else can rename or
 *   replace the trusted entry below it. This is sshd's StrictModes, with systemd's CHASE_SAFE
 *   rule for symlinks.
 * - A file is read by opening it once with O_NOFOLLOW|O_NONBLOCK, checking the descriptor
 *   (regular file, owner, mode, size cap) and reading from that descriptor: no check-then-read
 *   race, no symlink followed, no FIFO that blocks, no /dev/zero that fills the memory.
 * - A directory the agent creates files in must be trusted and writable by no one else; a
 *   directory it makes is made one component at a time and checked after each mkdir.
 *
 * Durable writes themselves are in atomic-write.ts, which uses these checks.
 */
import { constants as C, lstatSync, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { AgentError, describeSystemError, type Origin } from './errors';

/** The cap on every file the agent reads (configuration, PEM, state records): 1 MiB. */
export const MAX_FILE_BYTES = 1 << 20;

/** open(2) flags for reading a file without following a symlink or blocking on a FIFO. */
const READ_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** Symlinks followed on one path before giving up (Linux's own limit). */
const MAX_LINKS = 40;

/** Root, and the agent's own user when it does not run as root (dev mode, tests). */
export function trustedUids(): readonly number[] {
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? [0] : [0, uid];
}

export interface TrustOptions {
  /** Owners to trust; default trustedUids(). */
  readonly owners?: readonly number[];
  /** Where the path came from, so the error names the configuration variable. */
  readonly origin?: Origin;
}

/** Why a path is not trusted: another user could change it. */
function untrusted(p: string, why: string, fix: string, opts: TrustOptions): AgentError {
  return refused(
    p,
    `${why}: the agent runs as root and only uses files that no other user can change`,
    fix,
    opts,
  );
}

/** Why a path cannot be used: a link, a FIFO or device, too large. */
function refused(p: string, why: string, fix: string, opts: TrustOptions): AgentError {
  return new AgentError(
    'AGENT_E_UNSAFE_PATH',
    `${p} ${why}; ${fix}`,
    opts.origin ? { origin: opts.origin } : {},
  );
}

function mode(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

function kind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'not a regular file';
}

/**
 * The trust problem of one entry, or undefined. `sticky` accepts a directory writable by others
 * when its sticky bit is set (only for directories above the one the agent uses).
 */
function problem(
  p: string,
  st: Stats,
  sticky: boolean,
  opts: TrustOptions,
): AgentError | undefined {
  const owners = opts.owners ?? trustedUids();
  const owner = owners.length === 1 ? 'root' : `root (or uid ${owners[1]})`;
  if (!owners.includes(st.uid)) {
    return untrusted(
      p,
      `is owned by uid ${st.uid}, not ${owner}`,
      `run 'chown root:root ${p}' (and 'chmod go-w ${p}')`,
      opts,
    );
  }
  const w = st.mode & 0o022;
  if (w === 0) return undefined;
  if (sticky && st.isDirectory() && (st.mode & 0o1000) !== 0) return undefined;
  return untrusted(
    p,
    `is writable by ${w & 0o002 ? 'every user' : 'its group'} (mode ${mode(st)})`,
    `run 'chmod go-w ${p}'`,
    opts,
  );
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(p, 'cannot inspect', e);
  }
}

/**
 * A failed system call on `p`, with what to do. Permission denied to a user other than root on
 * something another user (root) owns is AGENT_E_NOT_ROOT: the agent runs as root, or is pointed
 * at paths its user owns. On its own user's file it is the mode (AGENT_E_IO, with the chmod).
 * Anything else is AGENT_E_IO naming the path and the error in words.
 */
export function ioError(p: string, what: string, e: unknown, opts: TrustOptions = {}): AgentError {
  const err = e as NodeJS.ErrnoException;
  const origin = opts.origin ? { origin: opts.origin } : {};
  const uid = process.getuid?.() ?? 0;
  if ((err.code === 'EACCES' || err.code === 'EPERM') && uid !== 0) {
    const found = nearestEntry(p);
    if (found && found.st.uid !== uid) {
      const owner = found.st.uid === 0 ? 'root' : `uid ${found.st.uid}`;
      return new AgentError(
        'AGENT_E_NOT_ROOT',
        `${what} ${p}: permission denied (${err.code}): ${found.path} belongs to ${owner} and this runs as uid ${uid}; run it as root (sudo; the systemd unit does), or point the agent at paths this user owns (\`istio-node-agent dev\` does)`,
        { cause: e, ...origin },
      );
    }
    if (found) {
      return new AgentError(
        'AGENT_E_IO',
        `${what} ${p}: permission denied (${err.code}): ${found.path} is mode ${mode(found.st)}; give its owner access, e.g. chmod u+rw${found.st.isDirectory() ? 'x' : ''} ${found.path}`,
        { cause: e, ...origin },
      );
    }
  }
  return new AgentError('AGENT_E_IO', describeSystemError(what, p, e), { cause: e, ...origin });
}

/** `p` or the nearest directory above it that can be looked at, with its lstat. */
function nearestEntry(p: string): { path: string; st: Stats } | undefined {
  for (let cur = path.resolve(p); ; cur = path.dirname(cur)) {
    try {
      return { path: cur, st: lstatSync(cur) };
    } catch {
      if (cur === '/') return undefined;
    }
  }
}

export interface Resolved {
  /** The path with every symlink resolved. */
  readonly real: string;
  /** lstat of the final entry; undefined when it (or a parent) does not exist. */
  readonly stat: Stats | undefined;
  /** When something is missing: the first missing directory or entry. */
  readonly missingFrom?: string;
}

/**
 * Walks `p` from `/`, one component at a time with lstat, following symlinks only when they are
 * owned by a trusted user and sit in a trusted directory, and checks every directory on the way
 * and the final entry. Returns the resolved path; a missing entry ends the walk (the caller
 * decides whether that is an error). Throws AGENT_E_UNSAFE_PATH naming the first untrusted part.
 */
export async function resolveTrusted(p: string, opts: TrustOptions = {}): Promise<Resolved> {
  let todo = path
    .resolve(p)
    .split('/')
    .filter((s) => s !== '');
  let cur = '/';
  const root = await fs.lstat('/');
  const bad = problem('/', root, true, opts);
  if (bad) throw bad;
  let st: Stats = root;
  let links = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    const next = path.join(cur, name);
    const s = await lstatOrUndefined(next);
    if (!s) return { real: path.join(next, ...todo), stat: undefined, missingFrom: next };
    if (s.isSymbolicLink()) {
      if (++links > MAX_LINKS)
        throw refused(p, 'has too many symlinks', 'point it at the real path', opts);
      const owners = opts.owners ?? trustedUids();
      if (!owners.includes(s.uid)) {
        throw untrusted(
          next,
          `is a symlink owned by uid ${s.uid}`,
          `replace it with the real path, or run 'chown -h root:root ${next}'`,
          opts,
        );
      }
      const target = await fs.readlink(next);
      todo = [
        ...path
          .resolve(cur, target)
          .split('/')
          .filter((x) => x !== ''),
        ...todo,
      ];
      cur = '/';
      continue;
    }
    const last = todo.length === 0;
    if (!last && !s.isDirectory()) {
      throw refused(next, 'is not a directory', `fix the path ${p}`, opts);
    }
    const b = problem(next, s, !last, opts);
    if (b) throw b;
    cur = next;
    st = s;
  }
  return { real: cur, stat: st };
}

/**
 * Checks that `dir` exists, is a directory and is trusted (see resolveTrusted), and that no one
 * but a trusted user can create entries in it. Returns its resolved path.
 */
export async function trustedDir(dir: string, opts: TrustOptions = {}): Promise<string> {
  const r = await resolveTrusted(dir, opts);
  if (!r.stat)
    throw ioError(
      r.missingFrom ?? dir,
      'cannot use',
      Object.assign(new Error(), { code: 'ENOENT' }),
    );
  if (!r.stat.isDirectory()) throw refused(dir, 'is not a directory', `fix the path`, opts);
  return r.real;
}

/**
 * Makes `dir` (and missing parents) owned by the agent, one component at a time, each checked
 * after mkdir; an existing directory must already be trusted. `mode` applies to the directories
 * it makes (the last one exactly, whatever the umask). Returns the resolved path.
 */
export async function ensureDir(
  dir: string,
  dirMode: number,
  opts: TrustOptions = {},
): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const r = await resolveTrusted(dir, opts);
    if (r.stat) {
      if (!r.stat.isDirectory()) throw refused(dir, 'is not a directory', 'remove it', opts);
      return r.real;
    }
    const from = r.missingFrom!;
    try {
      await fs.mkdir(from, { mode: dirMode });
      const fd = await fs.open(from, DIR_FLAGS);
      try {
        await fd.chmod(dirMode);
      } finally {
        await fd.close();
      }
    } catch (e) {
      // Someone made it meanwhile: walk again, which checks what is there now.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 8)
        throw ioError(from, 'cannot create', e, opts);
    }
  }
}

export interface ReadOptions extends TrustOptions {
  /** Cap on the size; default MAX_FILE_BYTES. */
  readonly maxBytes?: number;
  /**
   * Require the file and the directories above it to be trusted (configuration, binaries'
   * neighbours). Without it the file is still opened without following a symlink and checked
   * to be a regular file of bounded size (data whose owner does not matter, e.g. a bootstrap
   * certificate an operator dropped in a trusted directory).
   */
  readonly trusted?: boolean;
}

export interface ReadResult {
  readonly data: Buffer;
  /** fstat of the descriptor the data was read from. */
  readonly stat: Stats;
}

/**
 * Reads `file` once, safely: open with O_NOFOLLOW|O_NONBLOCK, fstat the descriptor (regular
 * file, size cap, and with `trusted` the owner and mode), read from that descriptor. Returns
 * undefined when the file does not exist.
 */
export async function readFileSafe(
  file: string,
  opts: ReadOptions = {},
): Promise<ReadResult | undefined> {
  const max = opts.maxBytes ?? MAX_FILE_BYTES;
  let target = file;
  if (opts.trusted) {
    const dir = await resolveTrusted(path.dirname(file), opts);
    if (!dir.stat) return undefined;
    target = path.join(dir.real, path.basename(file));
  }
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(target, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP')
      throw refused(
        file,
        'is a symlink',
        'put the file itself there (the agent does not follow symlinks here)',
        opts,
      );
    throw ioError(file, 'cannot open', e, opts);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw refused(file, `is ${kind(st)}, not a regular file`, 'put a regular file there', opts);
    if (st.size > max)
      throw refused(
        file,
        `is ${st.size} bytes, more than the ${max} allowed`,
        'check that it is the right file',
        opts,
      );
    if (opts.trusted) {
      const b = problem(file, st, false, opts);
      if (b) throw b;
    }
    // Sized from fstat, grown if the file grows meanwhile, never past max + 1 bytes.
    let buf = Buffer.alloc(Math.min(max + 1, st.size + 1));
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > max)
          throw refused(
            file,
            `grew past the ${max} bytes allowed while being read`,
            'check that it is the right file',
            opts,
          );
        const bigger = Buffer.alloc(Math.min(max + 1, buf.length * 2));
        buf.copy(bigger);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { data: buf.subarray(0, n), stat: st };
  } catch (e) {
    if (e instanceof AgentError) throw e;
    throw ioError(file, 'cannot read', e, opts);
  } finally {
    await fh.close();
  }
}

/** fsync of a directory (after a rename in it), opened without following a symlink. */
export async function fsyncDir(dir: string): Promise<void> {
  const d = await fs.open(dir, DIR_FLAGS);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
