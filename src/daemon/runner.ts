/**
 * The daemon runner `run` and `dev` share: builds the agent from the components it is given,
 * serves the monitoring endpoint, wires the signals (SIGTERM/SIGINT stop, SIGHUP reloads and a
 * refused reload is recorded in the status), the test hooks, the status file, and turns the end
 * into an exit code.
 */
import { EventEmitter } from 'node:events';
import { Agent } from '../agent';
import type { AgentEventMap, Component, ComponentDeps } from '../component';
import type { AgentConfig } from '../config/types';
import { systemClock } from '../lib/clock';
import { exec } from '../lib/exec';
import { toAgentError } from '../lib/errors';
import { acquireLock, AGENT_LOCK } from '../lib/lock';
import { NO_METRICS, statusFilePath, type Logger, type Metrics } from '../observe/index';
import type { Notifier } from '../systemd/index';
import { VERSION } from '../version';
import { Monitoring } from './monitoring';
import { installTestHooks } from './test-hooks';

export interface DaemonSpec {
  readonly config: AgentConfig;
  readonly log: Logger;
  /** The process environment (test hooks). */
  readonly env: NodeJS.ProcessEnv;
  readonly notifier: Notifier;
  /** The components to run, built with the daemon's dependencies. */
  readonly build: (deps: ComponentDeps) => Promise<Component[]>;
  /** Reads the configuration again for SIGHUP (rejects when a file is bad); absent: nothing to re-read. */
  readonly reload?: () => Promise<{
    readonly config: AgentConfig;
    readonly warnings: readonly string[];
  }>;
  /** Stop as soon as the agent has started (dev --once). */
  readonly once?: boolean;
  /** Called once the agent has started: the monitoring endpoint's address (undefined when off). */
  readonly started?: (info: { readonly monitoring: string | undefined }) => void;
}

/**
 * Holds `agent.lock` in `stateDir` while `fn` runs: one daemon per state directory, for the
 * daemon's whole life (the kernel drops the lock if the process dies); a second one refuses
 * with AGENT_E_ALREADY_RUNNING.
 */
export async function withAgentLock<T>(
  stateDir: string,
  holder: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireLock(stateDir, AGENT_LOCK, { holder });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Runs the daemon until it stops; returns the exit code. */
export async function runDaemon(spec: DaemonSpec): Promise<number> {
  const { config, log } = spec;
  const addr = config.core.monitoring;
  const monitoring = addr ? new Monitoring(log) : undefined;
  const { deps, bind } = liveDeps(log, monitoring?.store ?? NO_METRICS);
  const components = await spec.build(deps);
  const agent = new Agent(config, components, {
    log,
    clock: systemClock,
    notifier: spec.notifier,
    statusFile: statusFilePath(config.core.stateDir),
    info: () => ({
      version: VERSION,
      stateDir: config.core.stateDir,
      monitoring: monitoring?.address ?? null,
    }),
  });
  bind(agent);
  // The endpoint answers /healthz/live while the agent starts; prom-client (260-340 ms of this
  // thread) loads once the agent is READY, or at the first /metrics if that comes first: after
  // the first certificate the other components still start on the way to READY.
  if (monitoring && addr) await monitoring.listen(addr, agent);
  const onStop = (sig: string) => (): void => {
    log.info({ component: 'agent', signal: sig }, `received ${sig}`);
    void agent.stop();
  };
  const onTerm = onStop('SIGTERM');
  const onInt = onStop('SIGINT');
  const onHup = (): void => {
    reload(spec, agent, deps).catch((e: unknown) => {
      log.error({ component: 'agent', err: String(e) }, 'reload failed');
    });
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  const removeTestHooks = installTestHooks(spec.env, log);
  try {
    try {
      await agent.start();
    } catch (e) {
      const err = toAgentError(e);
      log.fatal({ component: 'agent', code: err.code }, err.toLine());
      return err.exitCode;
    }
    if (agent.status().state !== 'stopping') {
      deps.metrics?.set('startup_duration_seconds', performance.now() / 1000);
      monitoring?.warm();
      deps.events.emit('agent-ready');
      spec.started?.({ monitoring: monitoring?.address });
      if (spec.once) await agent.stop();
    }
    await agent.wait();
    return agent.failed ? agent.failed.exitCode : 0;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    removeTestHooks();
    await monitoring?.close();
  }
}

/** SIGHUP: the configuration read again and applied, or refused and recorded. */
async function reload(spec: DaemonSpec, agent: Agent, deps: ComponentDeps): Promise<void> {
  const { log } = spec;
  log.info({ component: 'agent', signal: 'SIGHUP' }, 'received SIGHUP, reloading configuration');
  if (!spec.reload) {
    log.info(
      { component: 'agent' },
      'nothing to reload: this configuration is not read from files',
    );
    return;
  }
  let next;
  try {
    next = await spec.reload();
  } catch (e) {
    const err = toAgentError(e);
    log.error(
      { component: 'config', code: err.code, err: err.toLine() },
      `reload refused, keeping the running configuration: ${err.toLine()}`,
    );
    deps.metrics?.inc('reloads_total', { result: 'refused' });
    agent.reloadRefused(err);
    return;
  }
  for (const w of next.warnings) log.warn({ component: 'config' }, w);
  const was = agent.currentConfig.core;
  const now = next.config.core;
  if (JSON.stringify(was.monitoring) !== JSON.stringify(now.monitoring))
    log.warn(
      { component: 'monitoring' },
      'ISTIO_AGENT_MONITORING_ADDR changed: it is read at start only; restart the agent to move the endpoint',
    );
  await agent.reload(next.config);
  deps.metrics?.inc('reloads_total', { result: 'applied' });
}

/**
 * The real dependencies for components, wired to an agent made later: components are built
 * before the Agent that runs them, so `fatal` and `changed` reach it through `bind`.
 */
export function liveDeps(
  log: Logger,
  metrics: Metrics = NO_METRICS,
): { deps: ComponentDeps; bind: (agent: Agent) => void } {
  let agent: Agent | undefined;
  const deps: ComponentDeps = {
    log,
    metrics,
    clock: systemClock,
    random: Math.random,
    exec,
    events: new EventEmitter<AgentEventMap>(),
    fatal: (e) => {
      agent?.fatal(e);
    },
    changed: () => {
      agent?.refresh();
    },
  };
  return {
    deps,
    bind: (a) => {
      agent = a;
    },
  };
}
