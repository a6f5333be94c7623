// Config errors that say what to do (issue 11): every bad line of a file in one run and in line
// order, messages for the usual slips, name warnings with the nearest known name, and a named
// file that is missing.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/index';
import { nearestName } from '../../src/config/index';
import { AgentError } from '../../src/lib/errors';
import { tmpDir, type Teardown } from '../helpers/tmp';

/** Both files (empty unless given) in a fresh directory. */
function files(t: Teardown, cluster = '', sidecar = ''): NodeJS.ProcessEnv {
  const dir = tmpDir(t, 'cfgp');
  writeFileSync(path.join(dir, 'cluster.env'), cluster);
  writeFileSync(path.join(dir, 'sidecar.env'), sidecar);
  return {
    ISTIO_CLUSTER_CONFIG: path.join(dir, 'cluster.env'),
    ISTIO_SIDECAR_CONFIG: path.join(dir, 'sidecar.env'),
  };
}

async function loadError(env: NodeJS.ProcessEnv): Promise<AgentError> {
  try {
    await loadConfig(env);
  } catch (e) {
    if (e instanceof AgentError) return e;
    throw e;
  }
  throw new Error('loadConfig accepted the configuration');
}

t.test('every bad line of a file in one run, in line order, syntax and values', async (t) => {
  const env = files(
    t,
    [
      'ENVOY_PORT=0', // 1: value
      'CITADEL_ENV=moon', // 2: value
      'not a line', // 3: syntax
      'ISTIO_INBOUND_INTERCEPTION_MODE=SIDEWAYS', // 4: value
      'WORKLOAD_CERT_TTL=10s', // 5: value
    ].join('\n'),
    'ENVOY_USER=ro ot\n', // sidecar.env:1: value
  );
  const err = await loadError(env);
  t.equal(err.exitCode, 78);
  const lines = err.problems.map((p) => p.origin?.line);
  t.same(lines, [1, 2, 3, 4, 5, 1], 'cluster.env lines 1..5, then sidecar.env');
  t.same(
    err.problems.map((p) => p.origin?.variable),
    [
      'ENVOY_PORT',
      'CITADEL_ENV',
      'not',
      'ISTIO_INBOUND_INTERCEPTION_MODE',
      'WORKLOAD_CERT_TTL',
      'ENVOY_USER',
    ],
  );
  t.equal(err.problems[2]!.code, 'AGENT_E_CONFIG_SYNTAX');
  t.equal(err.problems[0]!.code, 'AGENT_E_CONFIG_VALUE');
  t.equal(err.toLines().length, 6, 'printed one per line');
  t.match(err.toLine(), /\(and 5 more problems\)/, 'one line says how many more');
});

t.test('messages for the usual slips', async (t) => {
  const spaces = await loadError(files(t, 'ISTIO_SERVICE_CIDR = 10.0.0.0/8\n'));
  t.match(spaces.message, /no spaces around =/);
  t.match(spaces.message, /ISTIO_SERVICE_CIDR=10\.0\.0\.0\/8/, 'shows the line as it should be');

  const semi = await loadError(files(t, 'ISTIO_SERVICE_CIDR=10.0.0.0/8;10.1.0.0/16\n'));
  t.equal(semi.code, 'AGENT_E_CONFIG_VALUE');
  t.match(semi.message, /lists are comma-separated/);
  t.match(semi.message, /10\.0\.0\.0\/8,10\.1\.0\.0\/16/);

  const cased = await loadError(files(t, 'CITADEL_ENV=OnPrem\n'));
  t.match(cased.message, /onprem/);
});

t.test('typos, lower-case names and duplicates warn with the nearest known name', async (t) => {
  const { warnings } = await loadConfig(
    files(
      t,
      'CITADEL_ADRESS=ca:8060\ncitadel_env=onprem\nENVOY_PORT=15001\nENVOY_PORT=15002\nZZZ_QQQ=1\n',
    ),
  );
  t.match(
    warnings[0],
    /cluster\.env:1: unknown variable CITADEL_ADRESS is ignored; did you mean CITADEL_ADDRESS\?/,
  );
  t.match(
    warnings[1],
    /cluster\.env:2: unknown variable citadel_env .*upper-case: write CITADEL_ENV/,
  );
  t.match(warnings[2], /cluster\.env:4: ENVOY_PORT is set again \(first on line 3\)/);
  t.match(warnings[3], /cluster\.env:5: unknown variable ZZZ_QQQ is ignored$/);
  t.equal(warnings.length, 4);
  t.equal(nearestName('CIDADEL_ENV', ['CITADEL_ENV', 'ENVOY_PORT']), 'CITADEL_ENV');
  t.equal(nearestName('ELSEWHERE', ['CITADEL_ENV']), undefined);
});

t.test('a named configuration file that is missing is an error; /dev/null is none', async (t) => {
  const dir = tmpDir(t, 'cfgm');
  const err = await loadError({
    ISTIO_CLUSTER_CONFIG: path.join(dir, 'cluster.env'),
    ISTIO_SIDECAR_CONFIG: '/dev/null',
  });
  t.equal(err.code, 'AGENT_E_CONFIG_READ');
  t.equal(err.exitCode, 78);
  t.match(err.message, /cluster\.env does not exist/);
  t.equal(err.origin?.variable, 'ISTIO_CLUSTER_CONFIG');
  const ok = await loadConfig({
    ISTIO_CLUSTER_CONFIG: '/dev/null',
    ISTIO_SIDECAR_CONFIG: '/dev/null',
  });
  t.same(
    ok.sources.map((s) => s.present),
    [false, false],
  );
});
