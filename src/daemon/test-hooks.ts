import type { Logger } from '../observe/index';

/**
 * Behaviour that only the system test uses, inert unless the process environment has
 * ISTIO_AGENT_TEST_HOOKS=1 (never read from cluster.env or sidecar.env):
 * - SIGUSR2 blocks the event loop for good, so the test can watch systemd's watchdog restart a
 *   stuck agent. Without the variable no handler is installed and SIGUSR2 keeps its default
 *   action (the process ends).
 * Returns the function that removes what was installed.
 */
export function installTestHooks(env: NodeJS.ProcessEnv, log: Logger): () => void {
  if (env.ISTIO_AGENT_TEST_HOOKS !== '1') return () => undefined;
  log.warn(
    { component: 'agent', testHooks: true },
    'test hooks are enabled (ISTIO_AGENT_TEST_HOOKS=1): SIGUSR2 stalls the agent; never set this in production',
  );
  const onUsr2 = (): void => {
    log.warn(
      { component: 'agent', signal: 'SIGUSR2', testHooks: true },
      'test hook: blocking the event loop for good',
    );
    stallEventLoop();
  };
  process.on('SIGUSR2', onUsr2);
  return () => process.off('SIGUSR2', onUsr2);
}

/** Blocks the calling thread without spinning: waits on a cell that nobody will ever notify. */
export function stallEventLoop(): never {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0);
}
