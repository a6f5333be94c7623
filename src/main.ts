import { main } from './cli/index';

/** How long the exit waits for stdout and stderr to take the last lines (a stuck reader). */
const FLUSH_BOUND_MS = 5000;

/** Resolves once everything written to `stream` so far has been handed to the OS (or after the bound). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, FLUSH_BOUND_MS);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    try {
      // The callback of an empty write runs after every earlier write has been flushed.
      if (!stream.write('', done)) stream.once('drain', done);
    } catch {
      done();
    }
  });
}

/**
 * Ends the process with `code` once the command is done and its output flushed. Exiting
 * explicitly matters: a handle left open by anything (a hung request, a socket) would otherwise
 * keep a stopped daemon alive until systemd's stop timeout kills it.
 */
async function finish(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

// The CLI entry. Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error.
main(process.argv.slice(2), {
  env: process.env,
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
}).then(
  (code) => finish(code),
  (e: unknown) => {
    process.stderr.write(`istio-node-agent: ${String(e)}\n`);
    return finish(1);
  },
);
