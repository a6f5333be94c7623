import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { Exec } from '../../src/lib/exec';
import { exec as realExec } from '../../src/lib/exec';

const execFileP = promisify(execFile);

/** A network namespace the test creates and removes: one of our "test hosts". */
export interface Netns {
  readonly name: string;
  /** Runs a command inside the namespace; throws on non-zero exit. Returns stdout. */
  run(cmd: string, args: readonly string[]): Promise<string>;
  runSync(cmd: string, args: readonly string[]): string;
  /** An Exec (src/lib/exec) whose programs run inside this namespace. */
  readonly exec: Exec;
  remove(): void;
}

/** Creates `prefix-<random>` with loopback up. */
export function createNetns(prefix: string): Netns {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  const exec: Exec = (cmd, args, options) =>
    realExec('ip', ['netns', 'exec', name, cmd, ...args], options);
  return {
    name,
    exec,
    async run(cmd, args) {
      const r = await execFileP('ip', ['netns', 'exec', name, cmd, ...args]);
      return r.stdout;
    },
    runSync(cmd, args) {
      return execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { encoding: 'utf8' });
    },
    remove() {
      try {
        execFileSync('ip', ['netns', 'del', name]);
      } catch {
        /* already gone */
      }
    },
  };
}
