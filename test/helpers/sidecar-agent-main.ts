/**
 * A small agent process for tests that kill the agent: loads the configuration from the
 * environment like `run`, starts only the sidecar component, prints one JSON line
 * `{"harness":"ready",…}` on stdout when started, stops cleanly on SIGTERM (exit 0), and emits
 * `certs-rotated` on SIGUSR2. Run with `node --import tsx test/helpers/sidecar-agent-main.ts`.
 */
import { EventEmitter } from 'node:events';
import type { AgentEventMap } from '../../src/component';
import { loadConfig } from '../../src/config/index';
import { systemClock } from '../../src/lib/clock';
import { exec } from '../../src/lib/exec';
import { toAgentError } from '../../src/lib/errors';
import { createLogger } from '../../src/observe/logger';
import { createSidecarComponent } from '../../src/sidecar/index';

async function main(): Promise<number> {
  const { config } = await loadConfig(process.env);
  const log = createLogger({
    level: 'info',
    journal: false,
    write: (s) => process.stderr.write(s),
  });
  const events = new EventEmitter<AgentEventMap>();
  const component = await createSidecarComponent(config, {
    log,
    clock: systemClock,
    random: Math.random,
    exec,
    events,
    fatal: (e) => {
      log.fatal(e.message);
      process.exit(1);
    },
    changed: () => undefined,
  });
  if (!component) return 2;
  const stopped = new Promise<void>((resolve) => {
    process.on('SIGTERM', () => {
      void component.stop().then(resolve);
    });
  });
  process.on('SIGUSR2', () => {
    events.emit('certs-rotated', {
      certsDir: config.ca.certsDir,
      generation: String(Date.now()),
      notAfter: 0,
    });
  });
  await component.start(new AbortController().signal);
  process.stdout.write(
    JSON.stringify({ harness: 'ready', pid: process.pid, status: component.status() }) + '\n',
  );
  await stopped;
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`harness: ${toAgentError(e).toLine()}\n`);
    process.exitCode = 1;
  },
);
