import * as path from 'node:path';
import { Agent, liveDeps } from '../agent';
import { buildComponents } from '../components';
import { loadConfig } from '../config/index';
import { systemClock } from '../lib/clock';
import { toAgentError } from '../lib/errors';
import { acquireLock, AGENT_LOCK } from '../lib/lock';
import type { AgentConfig } from '../config/types';
import { createLogger, type Logger } from '../observe/index';
import { createNotifier } from '../systemd/index';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';
import { installTestHooks } from './test-hooks';

const USAGE = `Usage: istio-node-agent run

Runs the node agent in the foreground (the systemd unit runs this). Reads
cluster.env and sidecar.env, obtains and renews the workload certificate,
programs traffic capture and DNS, and supervises the sidecar.
Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads the configuration.`;

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(ctx.argv, HELP_OPTION, USAGE);
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const { config, warnings } = await loadConfig(ctx.env);
  const log = createLogger({ level: config.core.logLevel });
  for (const w of warnings) log.warn({ component: 'config' }, w);
  // One daemon per state directory, for the daemon's whole life (the kernel drops the lock if
  // the process dies); a second one refuses with AGENT_E_ALREADY_RUNNING.
  const lock = await acquireLock(config.core.stateDir, AGENT_LOCK, {
    holder: 'istio-node-agent run',
  });
  try {
    return await runDaemon(ctx, config, log);
  } finally {
    await lock.release();
  }
}

async function runDaemon(ctx: CommandContext, config: AgentConfig, log: Logger): Promise<number> {
  const notifier = createNotifier(ctx.env, log);
  const { deps, bind } = liveDeps(log);
  const components = await buildComponents(config, deps);
  const a = new Agent(config, components, {
    log,
    clock: systemClock,
    notifier,
    statusFile: path.join(config.core.stateDir, 'status.json'),
  });
  bind(a);
  const onStop = (sig: string) => () => {
    log.info({ component: 'agent', signal: sig }, `received ${sig}`);
    void a.stop();
  };
  const onTerm = onStop('SIGTERM');
  const onInt = onStop('SIGINT');
  const onHup = (): void => {
    log.info({ component: 'agent', signal: 'SIGHUP' }, 'received SIGHUP, reloading configuration');
    loadConfig(ctx.env)
      .then(
        async (r) => {
          for (const w of r.warnings) log.warn({ component: 'config' }, w);
          await a.reload(r.config);
        },
        (e: unknown) => {
          const err = toAgentError(e);
          log.error(
            { component: 'config', code: err.code, err: err.toLine() },
            `reload refused, keeping the running configuration: ${err.toLine()}`,
          );
        },
      )
      .catch((e: unknown) => {
        log.error({ component: 'agent', err: String(e) }, 'reload failed');
      });
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  const removeTestHooks = installTestHooks(ctx.env, log);
  try {
    await a.start();
  } catch (e) {
    const err = toAgentError(e);
    log.fatal({ component: 'agent', code: err.code }, err.toLine());
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    removeTestHooks();
    return err.exitCode;
  }
  await a.wait();
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onInt);
  process.off('SIGHUP', onHup);
  removeTestHooks();
  const failed = a.failed;
  return failed ? failed.exitCode : 0;
}
