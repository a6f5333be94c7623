import { buildComponents } from '../components';
import { loadConfig } from '../config/index';
import { runDaemon, withAgentLock } from '../daemon/index';
import { createLogger, wantsColor } from '../observe/index';
import { createNotifier } from '../systemd/index';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent run

Runs the node agent in the foreground (the systemd unit runs this). Reads
cluster.env and sidecar.env, obtains and renews the workload certificate,
programs traffic capture and DNS, and supervises the sidecar. Serves
/healthz/live, /healthz/ready, /metrics and /debug/status on
ISTIO_AGENT_MONITORING_ADDR (default 127.0.0.1:15014).
Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads the configuration.
Output: JSON records with journald priorities under systemd; readable lines on a terminal.`;

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(ctx.argv, HELP_OPTION, USAGE);
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const { config, warnings } = await loadConfig(ctx.env);
  // Under the journal: JSON with priorities. On a terminal: readable lines, as `dev` prints.
  const log = createLogger({
    level: config.core.logLevel,
    pretty: !ctx.env.JOURNAL_STREAM && process.stdout.isTTY,
    color: wantsColor(process.stdout, ctx.env),
  });
  for (const w of warnings) log.warn({ component: 'config' }, w);
  return withAgentLock(config.core.stateDir, 'istio-node-agent run', () =>
    runDaemon({
      config,
      log,
      env: ctx.env,
      notifier: createNotifier(ctx.env, log),
      build: (deps) => buildComponents(config, deps),
      reload: () => loadConfig(ctx.env),
    }),
  );
}
