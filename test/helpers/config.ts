// One way to make an AgentConfig in tests: the variables as if they were lines 1..n of a file,
// through the same readers and checks `run` uses (src/config).
import { buildConfig, RawEnv, type AgentConfig } from '../../src/config/index';

/** The variables `vars` as lines 1..n of `file` (for a section parser, or to name origins). */
export function testRaw(vars: Readonly<Record<string, string>> = {}, file = 'test.env'): RawEnv {
  const raw = new RawEnv();
  let line = 0;
  for (const [k, v] of Object.entries(vars)) raw.set(k, v, file, ++line);
  return raw;
}

/** The configuration `vars` give (lines 1..n of `files.cluster`), every other at its default. */
export function testConfig(
  vars: Readonly<Record<string, string>> = {},
  files: AgentConfig['files'] = { cluster: 'test.env', sidecar: 'none' },
): AgentConfig {
  return buildConfig(testRaw(vars, files.cluster), files);
}
