// The pieces the certificate manager is made of, each on its own: status, the failure
// bookkeeping, reading the set held, the round's deadline, the reload log. The manager's
// behaviour over time is in cert-manager.test.ts.
import t from 'tap';
import { AgentError } from '../../src/lib/errors';
import { FakeClock } from '../../src/lib/clock';
import { certStatus } from '../../src/certs/status';
import { Failures, fatalFailure, logFailure, retryDelayFor } from '../../src/certs/failures';
import { checkPresent, credentialInput, describeSet } from '../../src/certs/inspect';
import { timeoutError, withDeadline } from '../../src/certs/round';
import { logSettingsChange } from '../../src/certs/reload';
import { settingsChange, RETRY_POLICY } from '../../src/certs/policy';

import { makeLeaf, makeRoot } from '../helpers/pki';
import { testConfig } from '../helpers/config';
import { testLogger } from '../helpers/deps';

const H = 3_600_000;
const NOW = Date.UTC(2026, 0, 1);
const ID = 'spiffe://cluster.local/ns/default/sa/vm';

const held = {
  notBefore: NOW - H,
  notAfter: NOW + 2 * H,
  serial: '0A',
  issuer: 'agent' as const,
  generation: '..gen',
};

t.test('status: ready while our certificate is valid; problem while renewal fails', async (t) => {
  const base = {
    now: NOW,
    identity: ID,
    current: held,
    nextRenewal: NOW + H,
    rotations: 3,
    failures: 0,
    lastError: undefined,
    failingSince: undefined,
    renewing: false,
  };
  const ok = certStatus(base);
  t.equal(ok.ready, true);
  t.equal(
    ok.summary,
    'cert valid until 2026-01-01T02:00:00.000Z, renewal at 2026-01-01T01:00:00.000Z',
  );
  t.equal(ok.problem, undefined);
  t.match(ok.details, { identity: ID, serial: '0A', rotations: 3, renewing: false });
  t.equal(certStatus({ ...base, current: { ...held, issuer: 'bootstrap' } }).ready, false);
  t.equal(certStatus({ ...base, now: NOW + 2 * H }).ready, false, 'expired');
  t.same(certStatus({ ...base, current: undefined, nextRenewal: undefined }).summary, 'cert: none');
  const failing = certStatus({
    ...base,
    failures: 2,
    lastError: new AgentError('AGENT_E_CA_UNAVAILABLE', 'the CA is away'),
    failingSince: NOW - 60_000,
  });
  t.equal(
    failing.problem,
    'renewal failing since 2025-12-31T23:59:00.000Z: [AGENT_E_CA_UNAVAILABLE] the CA is away',
  );
});

t.test('failures: counted, the first time kept, cleared by a success', async (t) => {
  const f = new Failures();
  const a = new AgentError('AGENT_E_CA_UNAVAILABLE', 'away');
  const b = new AgentError('AGENT_E_CA_OVERLOADED', 'busy', { retryAfterMs: 90_000 });
  f.record(a, 'ca', NOW);
  f.record(b, 'credential', NOW + 5000);
  t.match(f, { count: 2, lastError: b, lastStage: 'credential', since: NOW });
  f.clear();
  t.match(f, { count: 0, lastError: undefined, lastStage: undefined, since: undefined });

  t.equal(
    retryDelayFor(a, 1, NOW, NOW + 100 * H, () => 0.5),
    RETRY_POLICY.initialMs,
    'the first retry while valid',
  );
  t.ok(retryDelayFor(b, 1, NOW, undefined, () => 0.5) >= 90_000, 'a CA hint is honoured');
  t.ok(
    retryDelayFor(b, 1, NOW, undefined, () => 0) >= RETRY_POLICY.initialMs,
    'overloaded: the slow policy even without a certificate',
  );
});

t.test('fatalFailure: the CA refusing past expiry, or a configuration error', async (t) => {
  const refused = new AgentError('AGENT_E_CA_REJECTED', 'no');
  const fatal = fatalFailure(refused, { ...held, notAfter: NOW - 1 }, NOW, '/etc/certs');
  t.match(fatal, {
    code: 'AGENT_E_CERT_EXPIRED',
    message: /expired at 2025-12-31T23:59:59.999Z and the CA refuses.*in \/etc\/certs and restart/,
  });
  t.match(fatalFailure(refused, undefined, NOW, '/d')?.message, /is missing and the CA refuses/);
  t.equal(fatalFailure(refused, held, NOW, '/d'), undefined, 'still valid');
  const config = new AgentError('AGENT_E_BOOTSTRAP_INVALID', 'bad');
  t.equal(fatalFailure(config, undefined, NOW, '/d'), config, 'ends as itself');
  t.equal(
    fatalFailure(new AgentError('AGENT_E_CA_UNAVAILABLE', 'x'), undefined, NOW, '/d'),
    undefined,
  );
});

t.test('logFailure: a warning while valid past the retry, an error otherwise', async (t) => {
  const { log, records } = testLogger();
  const f = new Failures();
  const err = new AgentError('AGENT_E_CA_UNAVAILABLE', 'the CA is away', { retryAfterMs: 7000 });
  f.record(err, 'ca', NOW);
  logFailure(log, err, 5000, f, held, NOW);
  logFailure(log, err, 5000, f, { ...held, notAfter: NOW + 4000 }, NOW);
  f.record(new AgentError('AGENT_E_CERT_TIMEOUT', 'stuck'), 'write', NOW);
  logFailure(log, new AgentError('AGENT_E_CERT_TIMEOUT', 'stuck'), 1000, f, undefined, NOW);
  t.match(records, [
    {
      level: 'warn',
      msg: 'CSR signing failed: the CA is away. Will retry in 5s',
      code: 'AGENT_E_CA_UNAVAILABLE',
      stage: 'ca',
      attempt: 1,
      retryInMs: 5000,
      retryHintMs: 7000,
    },
    { level: 'error', msg: /^CSR signing failed/ },
    { level: 'error', msg: 'certificate renewal failed: stuck. Will retry in 1s', stage: 'write' },
  ]);
});

t.test('logFailure: "will retry" once, with when (not "will retry. Will retry")', async (t) => {
  const { log, records } = testLogger();
  const f = new Failures();
  const err = new AgentError(
    'AGENT_E_CA_UNAVAILABLE',
    'the CA (ca:8060) is unavailable: x; will retry',
  );
  f.record(err, 'ca', NOW);
  logFailure(log, err, 5000, f, held, NOW);
  t.match(records, [
    { msg: 'CSR signing failed: the CA (ca:8060) is unavailable: x. Will retry in 5s' },
  ]);
  t.notMatch(records[0]?.msg, /will retry\. Will retry/i);
});

t.test('the set held: its leaf, its key, what start needs', async (t) => {
  const root = await makeRoot('CN=test root', NOW);
  const leaf = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: NOW - H,
    notAfter: NOW + H,
  });
  const other = await makeLeaf(root, { sans: [], notBefore: NOW - H, notAfter: NOW + H });
  const set = {
    keyPem: leaf.key.pem,
    chainPem: leaf.certPem,
    rootPem: root.certPem,
    generation: '..g',
    meta: { issuer: 'agent' as const },
  };
  t.match(describeSet(set, '/c'), {
    notBefore: NOW - H,
    notAfter: NOW + H,
    issuer: 'agent',
    generation: '..g',
  });
  t.equal(describeSet({ ...set, chainPem: undefined }, '/c'), undefined);
  t.throws(() => describeSet({ ...set, keyPem: other.key.pem }, '/c'), {
    code: 'AGENT_E_BOOTSTRAP_INVALID',
    message: '/c/cert-chain.pem: it does not match /c/key.pem',
  });
  t.throws(() => describeSet({ ...set, chainPem: 'nothing' }, '/c'), {
    message: /no PEM certificate/,
  });
  t.same(credentialInput(set), { keyPem: leaf.key.pem, chainPem: leaf.certPem, notAfter: NOW + H });
  t.same(credentialInput({}), { keyPem: undefined, chainPem: undefined, notAfter: undefined });

  t.doesNotThrow(() => {
    checkPresent(set, 'onprem', '/c');
  });
  t.doesNotThrow(() => {
    checkPresent({ ...set, keyPem: undefined, chainPem: undefined }, 'gcp', '/c');
  });
  t.throws(
    () => {
      checkPresent({ ...set, keyPem: undefined, rootPem: undefined }, 'onprem', '/c');
    },
    {
      code: 'AGENT_E_BOOTSTRAP_MISSING',
      message: /^\/c\/key\.pem, \/c\/root-cert\.pem missing; copy the bootstrap set/,
    },
  );
});

t.test('the round deadline: settles at the deadline or at stop, whatever fn does', async (t) => {
  const clock = new FakeClock(NOW);
  const stop = new AbortController();
  const stuck = withDeadline(
    clock,
    stop.signal,
    1000,
    () => new Error('deadline'),
    () => new Promise<never>(() => undefined),
  );
  const rejected = t.rejects(stuck, { message: 'deadline' });
  await clock.advance(1000);
  await rejected;
  t.equal(clock.pending, 0, 'no timer left');

  const seen: AbortSignal[] = [];
  const cut = withDeadline(
    clock,
    stop.signal,
    1000,
    () => new Error('deadline'),
    (s) => {
      seen.push(s);
      return new Promise<never>(() => undefined);
    },
  );
  stop.abort(new Error('stopping'));
  await t.rejects(cut, { message: 'stopping' });
  t.equal(seen[0]!.aborted, true, 'fn is told');
  t.equal(clock.pending, 0);

  const sync = withDeadline(
    clock,
    new AbortController().signal,
    1000,
    () => new Error('d'),
    () => {
      throw new Error('at once');
    },
  );
  await t.rejects(sync, { message: 'at once' });
  t.equal(clock.pending, 0, 'a synchronous throw cancels the timer too');
  t.equal(
    await withDeadline(
      clock,
      new AbortController().signal,
      1000,
      () => new Error('d'),
      () => Promise.resolve(7),
    ),
    7,
  );

  const ca = testConfig({ CITADEL_ADDRESS: 'ca.test:8060' }).ca;
  t.match(timeoutError('ca', 50_000, ca, '/c', 'onprem'), {
    code: 'AGENT_E_CERT_TIMEOUT',
    message:
      'certificate renewal did not finish within 50s (2 × CA_CALL_TIMEOUT + 30s): stuck waiting for the CA at ca.test:8060; abandoned, will retry; check the CA at ca.test:8060',
    details: { stage: 'ca', timeoutMs: 50_000 },
  });
  t.match(
    timeoutError('start', 50_000, ca, '/c', 'onprem').message,
    /^reading the certificate set did not finish.*stuck reading the certificate set in \/c; check that/,
  );
  t.match(
    timeoutError('identity', 1, ca, '/c', 'gcp').message,
    /GCE metadata server at 169\.254\.169\.254.*check GCE_METADATA_HOST/,
  );
});

t.test('the reload log: what applies when, what needs a restart', async (t) => {
  const { log, records } = testLogger();
  const prev = testConfig({}).ca;
  const change = settingsChange(
    prev,
    testConfig({ CA_API: 'CreateCertificate', CERTS_DIR: '/x' }).ca,
  );
  logSettingsChange(log, change, prev, NOW + 90_000, NOW);
  logSettingsChange(log, settingsChange(prev, prev), prev, undefined, NOW);
  t.match(records, [
    {
      level: 'info',
      msg: 'certificate settings changed by reload: CA_API; they apply at the next CSR, next renewal at 2026-01-01T00:01:30.000Z (in 1m30s)',
      applied: ['CA_API'],
    },
    {
      level: 'warn',
      msg: /only read at start: CERTS_DIR; the values from start stay in force \(CITADEL_ENV onprem, CERTS_DIR \/etc\/certs\)/,
      restartNeeded: ['CERTS_DIR'],
    },
  ]);
  t.equal(records.length, 2, 'nothing changed: nothing logged');
});
