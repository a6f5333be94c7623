// One way to make an AgentConfig in tests: the variables as if they came from a file, through
// the same readers and checks `run` uses (src/config).
import { buildConfig, RawEnv, type AgentConfig } from '../../src/config/index';

/** The configuration `vars` give, every other variable at its default. */
export function testConfig(
  vars: Readonly<Record<string, string>> = {},
  files: AgentConfig['files'] = { cluster: 'test', sidecar: 'test' },
): AgentConfig {
  const raw = new RawEnv();
  for (const [k, v] of Object.entries(vars)) raw.set(k, v, 'test', 0);
  return buildConfig(raw, files);
}
