// Durations are bounded where they are parsed: a value past its maximum is a configuration
// error naming file, line and variable, never a timer that overflows later (issue 9, lows:
// CA_CALL_TIMEOUT=596h overflowed AbortSignal.timeout and every CA call failed at once).
import t from 'tap';
import { RawEnv } from '../../src/config/raw';
import type { AgentConfig } from '../../src/config/types';
import { AgentError } from '../../src/lib/errors';
import { testConfig } from '../helpers/config';

/** setTimeout / AbortSignal.timeout accept at most 2^31-1 ms. */
const TIMER_MAX_MS = 2 ** 31 - 1;

function build(vars: Record<string, string>): AgentConfig {
  return testConfig(vars, { cluster: '/etc/cluster.env', sidecar: '/etc/sidecar.env' });
}

function failure(vars: Record<string, string>): AgentError | undefined {
  try {
    build(vars);
  } catch (e) {
    if (e instanceof AgentError) return e;
    throw e;
  }
  return undefined;
}

/** Each duration variable, its largest accepted value, and what it becomes in the config. */
const TABLE: [string, string, number, (c: AgentConfig) => number][] = [
  ['CA_CALL_TIMEOUT', '10m', 600_000, (c) => c.ca.callTimeoutMs],
  ['WORKLOAD_CERT_TTL', '8760h', 8760 * 3_600_000, (c) => c.ca.certTtlMs],
  ['CERT_FIRST_CSR_JITTER', '5m', 300_000, (c) => c.ca.firstCsrJitterMs],
  ['ISTIO_CAPTURE_CHECK_INTERVAL', '24h', 86_400_000, (c) => c.capture.checkIntervalMs],
  ['ISTIO_PROXY_READY_TIMEOUT', '1h', 3_600_000, (c) => c.sidecar.readyTimeoutMs],
];

t.test('every duration variable has a maximum, and the maximum itself is accepted', async (t) => {
  for (const [name, max, ms, read] of TABLE) {
    t.equal(read(build({ [name]: max })), ms, `${name}=${max} accepted`);
    const e = failure({ [name]: `${max}1s` });
    t.equal(e?.code, 'AGENT_E_CONFIG_VALUE', `${name} just past ${max} refused`);
    t.match(e?.message ?? '', /longer than the maximum/, `${name}: the message says why`);
    t.equal(e?.origin?.variable, name, `${name}: the error names the variable`);
    t.equal(e?.origin?.file, '/etc/cluster.env', `${name}: and the file`);
  }
});

t.test('CA_CALL_TIMEOUT of 596h (past the timer limit) is a configuration error', async (t) => {
  for (const v of ['596h', '600h', '99999999999999999999h', '2147483648']) {
    t.equal(failure({ CA_CALL_TIMEOUT: v })?.code, 'AGENT_E_CONFIG_VALUE', `CA_CALL_TIMEOUT=${v}`);
  }
});

t.test('every duration that becomes a timer fits in a timer', async (t) => {
  for (const [name, max, , read] of TABLE) {
    if (name === 'WORKLOAD_CERT_TTL') continue; // a lifetime, not a timer (renewal timers chain)
    t.ok(read(build({ [name]: max })) <= TIMER_MAX_MS, `${name}=${max} fits setTimeout`);
  }
});

t.test('RawEnv.duration: bounds on both sides', async (t) => {
  const raw = new RawEnv();
  raw.set('D', '90s', 'f', 1);
  t.equal(raw.duration('D', 1000, 1000, 120_000), 90_000);
  t.same(raw.problems, [], 'in range: no problem');
  // Out of range: the problem is recorded and the default returned, so reading goes on.
  t.equal(raw.duration('D', 1000, 1000, 60_000), 1000, 'too long: the default');
  t.equal(raw.duration('D', 2000, 100_000, 200_000), 2000, 'too short: the default');
  t.match(raw.problems, [
    { code: 'AGENT_E_CONFIG_VALUE', message: /90s is longer than the maximum 1m0s/ },
    { code: 'AGENT_E_CONFIG_VALUE', message: /90s is shorter than the minimum 1m40s/ },
  ]);
  t.equal(raw.duration('UNSET', 5000, 0, 10_000), 5000, 'the default when unset');
});
