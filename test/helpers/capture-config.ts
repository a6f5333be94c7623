import { buildConfig } from '../../src/config/load';
import { RawEnv } from '../../src/config/raw';
import type { AgentConfig } from '../../src/config/types';

/** An AgentConfig from variables, as if they were lines 1..n of `test.env`. */
export function configFrom(vars: Record<string, string>): AgentConfig {
  const raw = new RawEnv();
  let line = 1;
  for (const [k, v] of Object.entries(vars)) raw.set(k, v, 'test.env', line++);
  return buildConfig(raw, { cluster: 'test.env', sidecar: 'none' });
}
