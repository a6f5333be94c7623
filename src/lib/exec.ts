import { spawn } from 'node:child_process';
import { AgentError } from './errors';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string;
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** Something that runs a program and collects its output; faked in unit tests. */
export type Exec = (
  cmd: string,
  args: readonly string[],
  options?: ExecOptions,
) => Promise<ExecResult>;

/**
 * Runs `cmd` without a shell. Resolves with the exit code (non-zero is not an error here; callers
 * decide); rejects with AGENT_E_EXEC when the program cannot be started or times out.
 */
export const exec: Exec = (cmd, args, options = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new AgentError('AGENT_E_EXEC', `${cmd} did not finish within ${options.timeoutMs} ms`),
        );
      }, options.timeoutMs);
    }
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(
        new AgentError(
          'AGENT_E_EXEC',
          `cannot run ${cmd}: ${e.code === 'ENOENT' ? 'not found' : e.message}`,
          {
            cause: e,
            details: { cmd, errno: e.code },
          },
        ),
      );
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined); // EPIPE when the child exits early
    child.stdin.end(options.input ?? '');
  });

/** Runs and throws AGENT_E_EXEC with the program's stderr when it exits non-zero. */
export async function execOk(
  run: Exec,
  cmd: string,
  args: readonly string[],
  options?: ExecOptions,
): Promise<ExecResult> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    throw new AgentError(
      'AGENT_E_EXEC',
      `${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`,
      {
        details: { cmd, code: r.code },
      },
    );
  }
  return r;
}
