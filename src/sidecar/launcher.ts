/**
 * Starting and signalling the sidecar process: the only place that spawns it. The child gets its
 * own process group (so a Ctrl-C on the agent's terminal does not reach it, and so leftovers can
 * be killed as a group), pipes for stdout/stderr, and no stdin.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';

export interface LaunchSpec {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The real program is pid 1 of a PID namespace below the wrapper: SIGTERM goes to it. */
  readonly innerSignal: boolean;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  readonly error?: Error;
}

export interface ChildHandle {
  readonly pid: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Asks the program to stop (SIGTERM). */
  terminate(): void;
  /** SIGKILL to the process and its whole process group. */
  kill(): void;
}

export interface Launcher {
  launch(spec: LaunchSpec): ChildHandle;
}

/** The pids of `pid`'s children, from /proc (CONFIG_PROC_CHILDREN). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

export const processLauncher: Launcher = {
  launch(spec) {
    const child = spawn(spec.file, [...spec.args], {
      env: { ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const exited = new Promise<ExitInfo>((resolve) => {
      let done = false;
      child.once('error', (error) => {
        // 'error' without a pid = the process never started; with a pid, 'exit' still follows.
        if (child.pid === undefined && !done) {
          done = true;
          resolve({ code: null, signal: null, error });
        }
      });
      child.once('exit', (code, sig) => {
        if (done) return;
        done = true;
        resolve({ code, signal: sig });
      });
    });
    const pid = child.pid;
    return {
      pid,
      stdout: child.stdout,
      stderr: child.stderr,
      exited,
      terminate() {
        if (pid === undefined) return;
        if (!spec.innerSignal) {
          signal(pid, 'SIGTERM');
          return;
        }
        // unshare blocks SIGTERM and only waits; the program is its one child.
        const inner = childPids(pid)[0];
        if (inner !== undefined) signal(inner, 'SIGTERM');
        else signal(-pid, 'SIGKILL'); // still starting: nothing to drain, kill the group
      },
      kill() {
        if (pid === undefined) return;
        signal(-pid, 'SIGKILL');
        signal(pid, 'SIGKILL');
      },
    };
  },
};
