// The certificate component's decisions over time, on a FakeClock with the set, the CA and the
// identity source in memory (test/helpers/cert-manager.ts). No timed assertions: the fake
// clock is moved, real time is only waited on for crypto to finish.
import t from 'tap';
import { rotationDeadlineMs, EXPIRED_RETRY_POLICY } from '../../src/certs/policy';
import { AgentError } from '../../src/lib/errors';
import { until } from '../helpers/certs';
import type { IdentitySource } from '../../src/identity/index';
import { onpremIdentity } from '../../src/identity/index';
import { CertManager } from '../../src/certs/manager';
import { harness, ID, never } from '../helpers/cert-manager';
import { testDeps } from '../helpers/deps';

/** Resolves to true if `p` settles within a few turns of the event loop (no time passes). */
async function settlesPromptly(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 20 && !done; i++) await new Promise((r) => setImmediate(r));
  return done;
}

t.test(
  'a renewal stuck on a read that never completes: abandoned at the deadline, retried, shown in status',
  async (t) => {
    const h = await harness();
    await h.mgr.start(new AbortController().signal);
    t.equal(h.rotations.length, 1, 'first certificate');
    const deadline = rotationDeadlineMs(h.config.ca.callTimeoutMs);

    // The next key is made in real time (thread pool): let it be, so the round gets to the read.
    await h.keysReady();
    h.store.onRead = never; // e.g. key.pem replaced by a FIFO
    const renewal = h.clock.nextAt()!;
    await h.clock.advance(renewal - h.clock.now());
    t.equal(h.mgr.status().details?.renewing, true, 'the renewal is in flight');
    t.equal(h.mgr.status().problem, undefined, 'not yet a problem');
    await h.clock.advance(deadline);
    await h.settle();
    const problem = h.mgr.status().problem ?? '';
    t.match(problem, /AGENT_E_CERT_TIMEOUT/, 'status shows the stuck renewal');
    t.match(problem, /reading the certificate set/, 'and where it was stuck');
    t.equal(h.mgr.status().details?.failures, 1, 'counted as a failure');
    t.equal(h.mgr.status().details?.renewing, false, 'no longer in flight');
    t.ok(h.clock.nextAt()! > h.clock.now(), 'a retry is scheduled');
    t.equal(h.logged(/did not finish within/).length, 1, 'logged as a failure');
    t.same(h.fatals, [], 'the agent goes on (the certificate is still valid)');

    // The file is fixed: the retry succeeds.
    h.store.onRead = undefined;
    await h.runUntil(h.clock.nextAt()!);
    t.equal(h.rotations.length, 2, 'renewed on the retry');
    t.equal(h.mgr.status().problem, undefined, 'problem cleared');

    // Stuck again, and stop() is called while it is: stop returns at once.
    h.store.onRead = never;
    await h.clock.advance(h.clock.nextAt()! - h.clock.now());
    t.equal(h.mgr.status().details?.renewing, true);
    t.ok(await settlesPromptly(h.mgr.stop()), 'stop() returns although the read never completes');
  },
);

t.test('a CA that never answers (and ignores cancellation) is cut at the deadline', async (t) => {
  const h = await harness();
  await h.mgr.start(new AbortController().signal);
  h.ca.next = () => 'hang';
  await h.clock.advance(h.clock.nextAt()! - h.clock.now());
  await until(() => h.ca.calls.length === 2, 20_000, 'the renewal to reach the CA');
  await h.clock.advance(rotationDeadlineMs(h.config.ca.callTimeoutMs));
  await h.settle();
  t.match(
    h.mgr.status().problem ?? '',
    /AGENT_E_CERT_TIMEOUT.*waiting for the CA at ca\.test:8060/,
  );
  h.ca.next = () => 'issue';
  await h.runUntil(h.clock.nextAt()!);
  t.equal(h.rotations.length, 2, 'the retry renewed');
  t.equal(h.ca.calls.length, 3);
  await h.mgr.stop();
});

t.test(
  'stop() during a first CSR stuck at start: start rejects and stop returns promptly',
  async (t) => {
    const h = await harness();
    h.ca.next = () => 'hang';
    const started = h.mgr.start(new AbortController().signal);
    started.catch(() => undefined); // asserted below
    await until(() => h.ca.calls.length === 1, 20_000, 'the first CSR to reach the CA');
    t.ok(await settlesPromptly(h.mgr.stop()), 'stop returns');
    t.ok(await settlesPromptly(started), 'start settles');
    await t.rejects(started, 'start rejects: stopped before the first certificate');
  },
);

t.test('a stuck first CSR at start is abandoned at the deadline and retried', async (t) => {
  const h = await harness();
  let calls = 0;
  h.ca.next = () => (++calls === 1 ? 'hang' : 'issue');
  const started = h.mgr.start(new AbortController().signal);
  await until(() => h.ca.calls.length === 1, 20_000, 'the first CSR to reach the CA');
  await h.clock.advance(rotationDeadlineMs(h.config.ca.callTimeoutMs));
  await h.settle();
  t.match(h.mgr.status().problem ?? '', /AGENT_E_CERT_TIMEOUT/);
  await h.runUntil(h.clock.nextAt()!);
  await started;
  t.equal(h.rotations.length, 1, 'the retry issued the first certificate');
  await h.mgr.stop();
});

t.test(
  'past expiry with a full disk: the real cause is named, never "the CA refuses"; fast retries',
  async (t) => {
    const h = await harness();
    await h.mgr.start(new AbortController().signal);
    const first = h.rotations[0]!;
    h.store.onWrite = () => {
      throw new AgentError(
        'AGENT_E_CERT_STORE',
        `cannot write the certificate set in ${h.store.dir}: ENOSPC: no space left on device`,
      );
    };
    await h.runUntil(first.notAfter + 10 * 60_000);
    t.same(h.fatals, [], 'the agent does not end itself over a full disk');
    t.match(h.mgr.status().problem ?? '', /AGENT_E_CERT_STORE.*ENOSPC/, 'status names the disk');
    t.equal(h.mgr.status().ready, false, 'not ready: the certificate expired');
    const failures = h.logged(/./);
    t.ok(failures.length > 3, 'several failures logged');
    for (const r of failures) {
      t.notMatch(r.msg, /CA refuses|CSR signing failed/, `not blamed on the CA: ${r.msg}`);
      t.match(r.msg, /writing the new certificate set failed/, 'says what failed');
    }
    const last = failures.at(-1)!;
    t.equal(last.level, 'error', 'an error once expired');
    t.ok(
      (last.retryInMs as number) <= EXPIRED_RETRY_POLICY.maxMs * (1 + EXPIRED_RETRY_POLICY.jitter),
      `retried within seconds once expired (${String(last.retryInMs)} ms)`,
    );
    h.store.onWrite = undefined;
    await h.runUntil(h.clock.nextAt()!);
    t.equal(h.rotations.length, 2, 'back once the disk has room');
    t.equal(h.mgr.status().ready, true);
    await h.mgr.stop();
  },
);

t.test('past expiry the CA refusing still ends the agent, with the CA named', async (t) => {
  const h = await harness();
  await h.mgr.start(new AbortController().signal);
  const first = h.rotations[0]!;
  h.ca.next = () =>
    new AgentError(
      'AGENT_E_CA_AUTH',
      'the CA (HandleCSR at ca.test:8060) did not accept our credential: no',
    );
  await h.runUntil(first.notAfter + 60_000);
  t.equal(h.fatals.length, 1, 'ended');
  t.match(h.fatals[0]!.message, /CA refuses/);
  t.equal((h.fatals[0] as AgentError).code, 'AGENT_E_CERT_EXPIRED');
  await h.mgr.stop();
});

t.test('retries after expiry are seconds apart until the CA is back', async (t) => {
  const h = await harness();
  await h.mgr.start(new AbortController().signal);
  const first = h.rotations[0]!;
  h.ca.next = () =>
    new AgentError(
      'AGENT_E_CA_UNAVAILABLE',
      'the CA (HandleCSR at ca.test:8060) is unavailable: ECONNREFUSED; will retry',
    );
  await h.runUntil(first.notAfter + 30 * 60_000);
  const after = h.ca.calls.filter((c) => c.at > first.notAfter).map((c) => c.at);
  t.ok(
    after.length >= (30 * 60) / 25,
    `at least one try every ~25 s after expiry (${after.length} in 30 min)`,
  );
  const gaps = after.slice(1).map((a, i) => a - after[i]!);
  t.ok(
    Math.max(...gaps) <= EXPIRED_RETRY_POLICY.maxMs * (1 + EXPIRED_RETRY_POLICY.jitter),
    'never minutes apart',
  );
  h.ca.next = () => 'issue';
  await h.runUntil(h.clock.nextAt()!);
  t.equal(h.mgr.status().ready, true, 'back');
  await h.mgr.stop();
});

/** A gcp identity source whose metadata server fails `failures` times, then answers. */
function flakyGcp(failures: number, err: () => Error) {
  const calls = { email: 0, token: 0 };
  const source: IdentitySource = {
    kind: 'gcp',
    defaultIdentity(_set, signal) {
      calls.email++;
      if (calls.email <= failures) return Promise.reject(err());
      signal?.throwIfAborted();
      return Promise.resolve(ID);
    },
    credential() {
      calls.token++;
      return Promise.resolve({ kind: 'token', token: 'a.b.c', credentialType: 'gcp' });
    },
  };
  return { source, calls };
}

const metadataDown = (): AgentError =>
  new AgentError(
    'AGENT_E_METADATA_UNAVAILABLE',
    'the GCE metadata server at 169.254.169.254 is unavailable (service account email): ECONNREFUSED',
  );

t.test(
  'gcp: a metadata failure while reading the service account at start is retried like a CSR',
  async (t) => {
    const flaky = flakyGcp(3, metadataDown);
    const h = await harness({ source: () => flaky.source });
    const started = h.mgr.start(new AbortController().signal);
    started.catch(() => undefined);
    await until(() => flaky.calls.email === 1, 20_000, 'the first email request');
    await new Promise((r) => setImmediate(r));
    t.match(h.mgr.status().problem ?? '', /AGENT_E_METADATA_UNAVAILABLE/, 'status says why');
    t.equal(h.logged(/getting the workload identity failed.*Will retry in/).length, 1, 'logged');
    await h.runUntil(h.clock.now() + 5 * 60_000);
    await started;
    t.equal(flaky.calls.email, 4, 'asked again until it answered');
    t.equal(h.rotations.length, 1, 'then the first certificate');
    t.equal(h.ca.calls[0]!.req.identity, ID);
    t.equal(h.mgr.status().problem, undefined);
    await h.mgr.stop();
  },
);

t.test('gcp: a non-retryable failure reading the identity still ends start', async (t) => {
  const flaky = flakyGcp(1, () => new AgentError('AGENT_E_CONFIG_VALUE', 'GCE_METADATA_HOST: bad'));
  const h = await harness({ source: () => flaky.source });
  await t.rejects(h.mgr.start(new AbortController().signal), { code: 'AGENT_E_CONFIG_VALUE' });
  await h.mgr.stop();
});

t.test('gcp: stop() while the identity is being retried ends start promptly', async (t) => {
  const flaky = flakyGcp(1000, metadataDown);
  const h = await harness({ source: () => flaky.source });
  const started = h.mgr.start(new AbortController().signal);
  started.catch(() => undefined);
  await until(() => flaky.calls.email === 1, 20_000, 'the first email request');
  t.ok(await settlesPromptly(h.mgr.stop()), 'stop returns');
  t.ok(await settlesPromptly(started), 'start settles');
  await t.rejects(started);
});

t.test(
  'first start with a valid bootstrap set: the first CSR is spread by a small jitter',
  async (t) => {
    const h = await harness({ vars: { CERT_FIRST_CSR_JITTER: '2s' }, random: () => 0.5 });
    const t0 = h.clock.now();
    const started = h.mgr.start(new AbortController().signal);
    started.catch(() => undefined);
    await until(
      () => h.ca.calls.length > 0 || h.records.some((r) => /^first CSR in/.test(r.msg)),
      20_000,
      'start to get going',
    );
    t.equal(h.ca.calls.length, 0, 'no CSR at once');
    t.equal(h.clock.nextAt(), t0 + 1000, 'it waits half of CERT_FIRST_CSR_JITTER (random 0.5)');
    t.equal(h.records.filter((r) => /first CSR in 1s/.test(r.msg)).length, 1, 'and says so');
    await h.clock.advance(1000);
    await started;
    t.equal(h.ca.calls.length, 1);
    t.equal(h.ca.calls[0]!.at, t0 + 1000, 'the CSR went out after the jitter');
    await h.mgr.stop();
  },
);

t.test('no valid certificate: the first CSR goes out at once, whatever the jitter', async (t) => {
  for (const [name, o] of [
    ['an expired bootstrap set', { bootstrapValidMs: 0 }],
    ['no certificate (gcp)', { source: () => flakyGcp(0, metadataDown).source }],
  ] as const) {
    const h = await harness({ ...o, vars: { CERT_FIRST_CSR_JITTER: '5m' } });
    const t0 = h.clock.now();
    await h.mgr.start(new AbortController().signal);
    t.equal(h.ca.calls[0]?.at, t0, `${name}: at once`);
    await h.mgr.stop();
  }
});

t.test(
  'an overloaded CA past expiry: the slow backoff, never the fast one; a hint is a floor',
  async (t) => {
    const h = await harness();
    await h.mgr.start(new AbortController().signal);
    const first = h.rotations[0]!;
    const hint: { ms?: number } = {};
    h.ca.next = () =>
      new AgentError('AGENT_E_CA_OVERLOADED', 'the CA (HandleCSR at ca.test:8060) is overloaded', {
        retryAfterMs: hint.ms,
      });
    await h.runUntil(first.notAfter + 20 * 60_000);
    const after = h.ca.calls.filter((c) => c.at > first.notAfter).map((c) => c.at);
    const gaps = after.slice(1).map((a, i) => a - after[i]!);
    t.ok(gaps.length > 0, 'retried');
    t.ok(Math.min(...gaps) >= 4000, `at least 4 s apart although expired (${gaps.join(', ')})`);
    hint.ms = 120_000;
    await h.runUntil(h.clock.nextAt()!);
    const next = h.clock.nextAt()! - h.clock.now();
    t.ok(next >= 120_000, `the hint is a floor (${next} ms)`);
    const rec = h.records.filter((r) => r.code === 'AGENT_E_CA_OVERLOADED').at(-1)!;
    t.equal(rec.retryHintMs, 120_000, 'the log shows the hint');
    await h.mgr.stop();
  },
);

t.test('reload: certificate settings apply at the next CSR, and the log says which', async (t) => {
  const h = await harness();
  await h.mgr.start(new AbortController().signal);
  t.equal(h.ca.calls[0]!.target.address, 'ca.test:8060');
  const renewal = h.clock.nextAt()!;
  await h.mgr.reload(
    h.configWith({
      CITADEL_ADDRESS: 'ca2.test:15012',
      CITADEL_SERVER_NAME: 'istiod',
      CA_API: 'CreateCertificate',
      WORKLOAD_CERT_TTL: '30m',
      WORKLOAD_KEY_ALGORITHM: 'RSA',
      CA_CALL_TIMEOUT: '20s',
      WORKLOAD_CERT_ORG: 'example',
    }),
  );
  const rec = h.records.find((r) => /certificate settings changed by reload/.test(r.msg));
  t.ok(rec, 'logged');
  t.same(
    rec?.applied,
    [
      'CITADEL_ADDRESS',
      'CITADEL_SERVER_NAME',
      'CA_API',
      'WORKLOAD_CERT_TTL',
      'WORKLOAD_CERT_ORG',
      'WORKLOAD_KEY_ALGORITHM',
      'CA_CALL_TIMEOUT',
    ],
    'names each setting that took effect',
  );
  t.match(rec?.msg ?? '', /apply at the next CSR/);
  t.equal(h.ca.calls.length, 1, 'no CSR because of the reload itself');
  t.equal(h.clock.nextAt(), renewal, 'the renewal time is unchanged');
  t.equal(h.keygens.at(-1)?.algorithm, 'RSA', 'the next key is made with the new algorithm');
  await h.runUntil(renewal);
  const call = h.ca.calls[1]!;
  t.equal(call.target.address, 'ca2.test:15012', 'the next CSR goes to the new CA');
  t.equal(call.target.serverName, 'istiod');
  t.equal(call.target.api, 'CreateCertificate');
  t.equal(call.target.callTimeoutMs, 20_000);
  t.equal(call.req.ttlMs, 30 * 60_000, 'asks for the new lifetime');
  t.match(call.req.csrPem, /BEGIN CERTIFICATE REQUEST/);
  t.equal(h.rotations.length, 2);
  t.match(h.store.set.keyPem ?? '', /BEGIN RSA PRIVATE KEY/, 'an RSA key now');
  await h.mgr.stop();
});

t.test(
  'reload: a new renew ratio reschedules the renewal of the current certificate',
  async (t) => {
    const h = await harness();
    await h.mgr.start(new AbortController().signal);
    const cert = h.rotations[0]!;
    const lifetime = h.ca.lifetimeMs;
    const start = cert.notAfter - lifetime;
    // The first certificate since start is off schedule: random 0.5 draws the share 0.55.
    t.equal(h.clock.nextAt(), start + lifetime * 0.5 * 0.55, 'at 0.55 × 50 % of the lifetime');
    await h.mgr.reload(h.configWith({ CERT_RENEW_RATIO: '0.8' }));
    t.equal(h.clock.nextAt(), start + lifetime * 0.8 * 0.55, 'the same share of 80 % now');
    const rec = h.records.find((r) => /certificate settings changed by reload/.test(r.msg));
    t.same(rec?.applied, ['CERT_RENEW_RATIO']);
    t.match(rec?.msg ?? '', /next renewal/);
    await h.mgr.stop();
  },
);

t.test('reload: settings that need a restart are named, not silently ignored', async (t) => {
  const h = await harness();
  await h.mgr.start(new AbortController().signal);
  await h.mgr.reload(
    h.configWith({ CERTS_DIR: '/elsewhere', CITADEL_ENV: 'gcp', CERT_FIRST_CSR_JITTER: '10s' }),
  );
  const warn = h.logged(/restart/);
  t.equal(warn.length, 1, 'one warning');
  t.same(warn[0]?.restartNeeded, ['CITADEL_ENV', 'CERTS_DIR', 'CERT_FIRST_CSR_JITTER']);
  t.match(warn[0]?.msg ?? '', /CERTS_DIR.*restart the agent/);
  await h.runUntil(h.clock.nextAt()!);
  t.equal(h.rotations.length, 2, 'renewal goes on with the settings in force');
  await h.mgr.stop();
});

t.test(
  'reload: nothing changed, nothing said above debug; a new identity renews now',
  async (t) => {
    const h = await harness();
    await h.mgr.start(new AbortController().signal);
    const before = h.records.length;
    await h.mgr.reload(h.configWith({}));
    t.same(
      h.records.slice(before).filter((r) => r.level !== 'debug'),
      [],
      'no info, warning or error for an unchanged configuration',
    );
    const other = 'spiffe://cluster.local/ns/default/sa/other';
    await h.mgr.reload(h.configWith({ WORKLOAD_IDENTITY: other }));
    t.equal(h.clock.nextAt(), h.clock.now(), 'the renewal is due at once');
    await h.runUntil(h.clock.now());
    t.equal(h.ca.calls.at(-1)?.req.identity, other, 'the CSR asks for the new identity');
    t.equal(h.rotations.length, 2);
    t.equal(h.mgr.status().details?.identity, other);
    await h.mgr.stop();
  },
);

t.test('a step that throws synchronously leaves no deadline timer behind', async (t) => {
  const h = await harness({
    bootstrap: true,
    source: () => ({
      kind: 'onprem',
      defaultIdentity() {
        throw new AgentError('AGENT_E_IDENTITY_SAN', 'cert-chain.pem has no usable SAN');
      },
      credential() {
        throw new Error('not reached');
      },
    }),
  });
  await t.rejects(h.mgr.start(new AbortController().signal), { code: 'AGENT_E_IDENTITY_SAN' });
  t.equal(h.clock.pending, 0, 'the deadline timer was cancelled');
  await h.clock.advance(rotationDeadlineMs(h.config.ca.callTimeoutMs) + 1); // nothing fires
  await h.mgr.stop();
});

t.test(
  'renewal spread: the first certificate since start and one after a failure are drawn off schedule, timely renewals on schedule; the share is kept with the set',
  async (t) => {
    const h = await harness({ random: () => 0 });
    await h.mgr.start(new AbortController().signal);
    const span = h.ca.lifetimeMs * 0.5;
    const at = (): number => h.clock.nextAt()! - h.clock.now();
    t.equal(at(), span * 0.1, 'first CSR since start: off schedule, as early as 0.1 × ratio');
    t.equal(h.store.set.meta.renewShare, 0.1, 'the share is written with the set');
    await h.runUntil(h.clock.nextAt()!);
    t.equal(h.rotations.length, 2);
    t.equal(at(), span * 0.9, 'a timely renewal: on schedule, 0.9–1 × ratio');
    t.equal(h.store.set.meta.renewShare, 0.9);
    h.ca.next = () => new AgentError('AGENT_E_CA_UNAVAILABLE', 'down');
    await h.runUntil(h.clock.nextAt()!);
    t.equal(h.rotations.length, 2, 'the renewal failed');
    h.ca.next = () => 'issue';
    await h.runUntil(h.clock.nextAt()!);
    t.equal(h.rotations.length, 3, 'the retry renewed');
    t.equal(at(), span * 0.1, 'after a failure: off schedule again');
    await h.mgr.stop();
  },
);

t.test(
  'a restart keeps the renewal point drawn before it (the share kept with the set)',
  async (t) => {
    const h = await harness({ random: () => 0.3 });
    await h.mgr.start(new AbortController().signal);
    const renewal = h.clock.nextAt()!;
    await h.mgr.stop();
    await h.clock.advance(60_000);
    const again = new CertManager(
      { ...testDeps({ clock: h.clock, random: () => 0.99 }) },
      {
        ca: h.config.ca,
        store: h.store,
        connect: h.ca.connect,
        source: onpremIdentity(`${h.store.dir}/cert-chain.pem`),
      },
    );
    await again.start(new AbortController().signal);
    t.equal(h.ca.calls.length, 1, 'no CSR: the certificate is kept');
    t.equal(h.clock.nextAt(), renewal, 'renewed at the point drawn before the restart');
    await again.stop();
  },
);
