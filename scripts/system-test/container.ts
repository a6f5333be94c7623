// A booted Debian 12 container for the system test: a copy of the cached root, booted with
// `systemd-nspawn --boot --private-network`, driven through `nsenter --all` into its namespaces
// with the container's own systemctl and journalctl.
//
// This machine's PID 1 is not systemd, so nspawn runs with --register=no (no machined to
// register with) and --keep-unit (no systemd to make a scope for us); both are required here,
// and harmless where systemd is PID 1. machinectl and `systemd-run -M` need machined, so they
// are not used.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface BootOptions {
  /** The cached root (never modified: it is copied). */
  readonly root: string;
  /** Where the copy goes; removed by `destroy()`. */
  readonly workDir: string;
  /** Machine name (also the container's hostname). */
  readonly name: string;
  /** How long to wait for `systemctl is-system-running --wait`. */
  readonly bootTimeoutMs?: number;
}

/** The environment for commands inside: no host variables leak in. */
const INSIDE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  SYSTEMD_PAGER: '',
  SYSTEMD_COLORS: '0',
  DEBIAN_FRONTEND: 'noninteractive',
  TERM: 'dumb',
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Container {
  private constructor(
    readonly name: string,
    /** The container's root directory as seen from the host. */
    readonly dir: string,
    private readonly workDir: string,
    private readonly nspawn: ChildProcess,
    /** PID (host namespace) of the container's PID 1. */
    readonly leader: number,
    /** The console log (boot messages), for failure reports. */
    readonly consoleLog: string,
  ) {}

  /** Copies the root, boots it, and waits until systemd says the system is up. */
  static async boot(opts: BootOptions): Promise<Container> {
    const dir = path.join(opts.workDir, 'root');
    rmSync(opts.workDir, { recursive: true, force: true });
    run('mkdir', ['-p', opts.workDir]);
    // --reflink=auto: instant on btrfs/xfs, a plain copy elsewhere (a few seconds for ~300 MB).
    run('cp', ['-a', '--reflink=auto', opts.root, dir]);
    const consoleLog = path.join(opts.workDir, 'console.log');
    const fd = openSync(consoleLog, 'w');
    const nspawn = spawn(
      'systemd-nspawn',
      [
        '--boot',
        '--private-network',
        '--register=no',
        '--keep-unit',
        '--console=read-only',
        '-D',
        dir,
        '--machine',
        opts.name,
      ],
      { stdio: ['ignore', fd, fd], detached: true },
    );
    closeSync(fd);
    // For reapStale(): a run that was killed before its teardown leaves this behind.
    writeFileSync(path.join(opts.workDir, 'nspawn.pid'), String(nspawn.pid));
    const early = new Promise<never>((_, reject) => {
      nspawn.once('exit', (code, signal) => {
        reject(new Error(`systemd-nspawn exited early (${code ?? signal}): ${tail(consoleLog)}`));
      });
    });
    const leader = await Promise.race([findLeader(nspawn.pid!), early]);
    const c = new Container(opts.name, dir, opts.workDir, nspawn, leader, consoleLog);
    try {
      const deadline = Date.now() + (opts.bootTimeoutMs ?? 120_000);
      for (;;) {
        // is-system-running --wait needs the manager's bus; it may not be up at the very start.
        const r = await Promise.race([
          c.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: 60_000 }),
          early,
        ]);
        const state = r.stdout.trim();
        if (state === 'running') break;
        if (state === 'degraded') {
          const failed = await c.exec(['systemctl', '--failed', '--no-legend']);
          throw new Error(`the container booted degraded: ${failed.stdout.trim()}`);
        }
        if (Date.now() > deadline)
          throw new Error(`the container did not finish booting: ${state} ${r.stderr}`);
        await sleep(500);
      }
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  /** Runs a command inside the container (as root, all its namespaces, a clean environment). */
  exec(
    argv: readonly string[],
    opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
  ): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      // `env -i` inside as well: a test runner may add variables to every child it spawns (tap
      // adds NODE_OPTIONS to track processes), which must not reach the container.
      const vars = Object.entries({ ...INSIDE_ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`);
      const p = spawn(
        'nsenter',
        ['--target', String(this.leader), '--all', '--', 'env', '-i', ...vars, ...argv],
        { env: { ...INSIDE_ENV, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`timed out after ${opts.timeoutMs ?? 120_000} ms: ${argv.join(' ')}`));
      }, opts.timeoutMs ?? 120_000);
      p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      p.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      p.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      p.stdin.on('error', () => undefined);
      p.stdin.end(opts.input ?? '');
    });
  }

  /** Runs a shell script inside (sh -c); `set -e` is on. */
  sh(script: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return this.exec(['sh', '-ec', script], opts);
  }

  /** Like sh, but rejects with the output when the script fails. */
  async must(script: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.sh(script, opts);
    if (r.code !== 0)
      throw new Error(
        `inside ${this.name}: \`${script}\` exited ${r.code}: ${r.stderr}${r.stdout}`,
      );
    return r.stdout;
  }

  /** `systemctl show -p …` of `unit` inside, as property → value. */
  async show(unit: string, ...props: string[]): Promise<Record<string, string>> {
    const out = await this.must(`systemctl show ${props.map((p) => `-p ${p}`).join(' ')} ${unit}`);
    const r: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) r[line.slice(0, i)] = line.slice(i + 1);
    }
    return r;
  }

  /**
   * A path inside the running container as seen from the host, through /proc/<pid 1>/root (so
   * also inside the container's own mounts, e.g. the tmpfs nspawn puts on /tmp).
   */
  hostPath(inside: string): string {
    return path.join(`/proc/${this.leader}/root`, inside);
  }

  /** Powers the container off (SIGKILL if it does not stop in time) and removes the copy. */
  async destroy(): Promise<void> {
    const exited = new Promise<void>((r) => {
      if (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null) r();
      else
        this.nspawn.once('exit', () => {
          r();
        });
    });
    // nspawn turns SIGTERM into an orderly poweroff of the container (SIGRTMIN+3 to its init).
    this.nspawn.kill('SIGTERM');
    const inTime = await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)]);
    if (!inTime) {
      try {
        process.kill(this.leader, 'SIGKILL'); // ends the whole PID namespace
      } catch {
        /* already gone */
      }
      this.nspawn.kill('SIGKILL');
      await Promise.race([exited, sleep(10_000)]);
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }

  /**
   * For a process 'exit' handler (the test runner may end the test without its teardown): kills
   * the container at once and removes the copy, synchronously.
   */
  destroySync(): void {
    for (const pid of [this.leader, this.nspawn.pid]) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/**
 * Removes the work directories of earlier runs under `parent` whose test process is gone
 * (named `run-<pid>`), killing a container still running from one (by its recorded nspawn pid).
 */
export function reapStale(parent: string): string[] {
  if (!existsSync(parent)) return [];
  const reaped: string[] = [];
  for (const e of readdirSync(parent)) {
    const m = /^run-(\d+)$/.exec(e);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    const dir = path.join(parent, e);
    const pidFile = path.join(dir, 'nspawn.pid');
    const nspawnPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : NaN;
    if (Number.isInteger(nspawnPid) && readProc(nspawnPid, 'comm') === 'systemd-nspawn') {
      for (const child of childrenOf(nspawnPid)) tryKill(child);
      tryKill(nspawnPid);
    }
    rmSync(dir, { recursive: true, force: true });
    reaped.push(dir);
  }
  return reaped;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** The container's PID 1: nspawn's child running systemd. */
async function findLeader(nspawnPid: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const pid of childrenOf(nspawnPid)) {
      const comm = readProc(pid, 'comm');
      if (comm === 'systemd') return pid;
    }
    await sleep(100);
  }
  throw new Error('systemd-nspawn started no systemd within 30 s');
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = readProc(Number(e), 'stat');
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
    if (ppid === pid) out.push(Number(e));
  }
  return out;
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

function tail(file: string): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
}
