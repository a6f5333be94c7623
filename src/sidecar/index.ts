/**
 * The sidecar component: pilot-agent (as 1.0's istio-start.sh ran it) or envoy directly (the
 * agent doing pilot-agent's job), run as EXEC_USER, restarted with backoff, hot-restarted on
 * certificate rotation, never outliving the agent. See docs/decisions.md.
 */
import type { ComponentDeps } from '../component';
import type { ComponentFactory } from '../component';
import type { AgentConfig } from '../config/types';
import { defaultRuntime, type SidecarRuntime } from './runtime';
import { SidecarSupervisor } from './supervisor';

export { SidecarSupervisor } from './supervisor';
export { resolvePlan } from './resolve';
export { launchSpec, type SidecarPlan } from './plan';
export { defaultRuntime, RUNTIME_DEFAULTS, type SidecarRuntime } from './runtime';

/** Builds the sidecar supervisor with the given runtime (tests pass stand-ins). No I/O. */
export function createSidecar(
  config: AgentConfig,
  deps: ComponentDeps,
  runtime?: Partial<SidecarRuntime>,
): SidecarSupervisor {
  return new SidecarSupervisor(config, deps, { ...defaultRuntime(deps), ...runtime });
}

export const createSidecarComponent: ComponentFactory = (config, deps) => {
  if (config.sidecar.mode === 'none') {
    deps.log.child({ component: 'sidecar' }).info('SIDECAR_MODE=none: no sidecar is run');
    return Promise.resolve(undefined);
  }
  return Promise.resolve(createSidecar(config, deps));
};
