/**
 * A small agent process for tests that kill the agent: loads the configuration from the
 * environment like `run`, starts only the sidecar component, prints one JSON line
 * `{"harness":"ready",…}` on stdout when started, stops cleanly on SIGTERM (exit 0), and emits
 * `certs-rotated` on SIGUSR2. Run with `node --import tsx test/helpers/sidecar-agent-main.ts`.
 */
import { loadConfig } from '../../src/config/index';
import { toAgentError } from '../../src/lib/errors';
import { createSidecarComponent } from '../../src/sidecar/index';
import { testDeps } from './deps';

async function main(): Promise<number> {
  const { config } = await loadConfig(process.env);
  // Every record goes to stderr, where the test reads them.
  const deps = testDeps({ level: 'info', random: Math.random, echo: true });
  const component = await createSidecarComponent(config, {
    ...deps,
    fatal: (e) => {
      deps.log.fatal(e.message);
      process.exit(1);
    },
  });
  if (!component) return 2;
  const stopped = new Promise<void>((resolve) => {
    process.on('SIGTERM', () => {
      void component.stop().then(resolve);
    });
  });
  process.on('SIGUSR2', () => {
    deps.events.emit('certs-rotated', {
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
