import type { Component, ComponentDeps, ComponentFactory } from './component';
import type { AgentConfig } from './config/types';

/**
 * The registry: the components `run` starts, in start order: certificates first (the sidecar
 * needs them), then traffic capture and DNS, then the sidecar. Each component's folder exports
 * its factory from its index.ts; a factory returns undefined when the component is off in this
 * config. The contract (Component, ComponentFactory) lives in component.ts, which the
 * components import; nothing imports this file but the commands that build the agent.
 */
export const COMPONENT_FACTORIES: readonly {
  readonly name: string;
  readonly load: () => Promise<ComponentFactory>;
}[] = [
  { name: 'certs', load: () => import('./certs/index').then((m) => m.createCertComponent) },
  {
    name: 'capture',
    load: () => import('./netfilter/index').then((m) => m.createCaptureComponent),
  },
  { name: 'dns', load: () => import('./dns/index').then((m) => m.createDnsComponent) },
  { name: 'sidecar', load: () => import('./sidecar/index').then((m) => m.createSidecarComponent) },
];

export async function buildComponents(
  config: AgentConfig,
  deps: ComponentDeps,
): Promise<Component[]> {
  const out: Component[] = [];
  for (const f of COMPONENT_FACTORIES) {
    const factory = await f.load();
    const c = await factory(config, deps);
    if (c) out.push(c);
  }
  return out;
}
