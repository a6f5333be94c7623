import t from 'tap';
import {
  CA_REFUSALS,
  EXPIRED_RETRY_POLICY,
  RELOADABLE,
  RESTART_ONLY,
  firstCsrDelay,
  giveUpReason,
  settingsChange,
  startPlan,
  MAX_RETRY_HINT_MS,
  heldShare,
  planRenewal,
  renewTime,
  renewalAfterRatioChange,
  retryDelay,
  rotationDeadlineMs,
  RETRY_POLICY,
  RENEW_FROM,
  validShare,
  type Schedule,
} from '../../src/certs/policy';
import { backoffDelay, Backoff } from '../../src/lib/backoff';
import { testConfig } from '../helpers/config';

const H = 3_600_000;

t.test('renewal point: a share of ratio × lifetime, never after expiry', async (t) => {
  const table: [number, number, number, number, number][] = [
    // notBefore, notAfter, ratio, share, expected
    [0, 100 * H, 0.5, 1, 50 * H],
    [0, 100 * H, 0.5, 0.9, 45 * H],
    [0, 100 * H, 0.5, 0.1, 5 * H],
    [1000, 1000 + 60_000, 0.5, 1, 1000 + 30_000],
    [0, 2160 * H, 0.5, 1, 1080 * H],
    [0, 100 * H, 0.8, 0.5, 40 * H],
    [0, 100 * H, 0.9, 1, 90 * H],
    [0, 1000, 1, 1, 1000],
    [0, 1000, 2, 1, 1000], // never after expiry
    [5000, 1000, 0.5, 1, 1000], // no lifetime: at expiry, due
  ];
  for (const [nb, na, ratio, share, want] of table)
    t.equal(renewTime(nb, na, ratio, share), want, `${nb}..${na} at ${ratio} × ${share}`);
});

t.test(
  'renewal draw: on schedule over [0.9, 1] × ratio, off schedule over [0.1, 1]; only earlier',
  async (t) => {
    const cert = { notBefore: 0, notAfter: 100 * H };
    // schedule, random, expected point, expected share
    const table: [Schedule, number, number, number][] = [
      ['on', 0, 45 * H, 0.9],
      ['on', 0.5, 47.5 * H, 0.95],
      ['on', 0.999_999, 50 * H, 1],
      ['off', 0, 5 * H, 0.1],
      ['off', 0.5, 27.5 * H, 0.55],
      ['off', 0.999_999, 50 * H, 1],
    ];
    for (const [schedule, r, at, share] of table) {
      const p = planRenewal(cert, 0.5, schedule, 0, () => r);
      t.equal(Math.round(p.at / 1000), Math.round(at / 1000), `${schedule}, random ${r}: point`);
      t.ok(Math.abs(p.share - share) < 1e-5, `${schedule}, random ${r}: share ${p.share}`);
      t.equal(renewTime(0, 100 * H, 0.5, p.share), p.at, 'the share gives the point back');
    }
    t.same(RENEW_FROM, { on: 0.9, off: 0.1 });
  },
);

t.test(
  'renewal draw: never before now, due at once when even the latest point passed',
  async (t) => {
    // A 4-second certificate whose notBefore was rounded down to the second, 0.9 s old: the off
    // schedule floor (0.2 s) has passed, so the draw starts at now.
    const cert = { notBefore: 0, notAfter: 4000 };
    const p = planRenewal(cert, 0.5, 'off', 900, () => 0);
    t.equal(p.at, 900, 'the earliest point is now');
    t.equal(
      planRenewal(cert, 0.5, 'off', 900, () => 0.999_999).at,
      2000,
      'the latest is 0.5 × 4 s',
    );
    t.equal(planRenewal(cert, 0.5, 'on', 2500, () => 0.3).at, 2000, 'past the latest point: due');
    t.equal(planRenewal({ notBefore: 0, notAfter: 0 }, 0.5, 'off', 10, () => 0.3).at, 0);
  },
);

t.test('renewal draws stay within their bounds over many seeded draws, and spread', async (t) => {
  const rnd = seeded(42);
  for (const [schedule, lo] of [
    ['on', 0.9],
    ['off', 0.1],
  ] as const) {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < 10_000; i++) {
      const { at } = planRenewal({ notBefore: 0, notAfter: 1000 * H }, 0.5, schedule, 0, rnd);
      min = Math.min(min, at);
      max = Math.max(max, at);
    }
    t.ok(min >= 500 * H * lo, `${schedule}: min ${min / H} h`);
    t.ok(max <= 500 * H, `${schedule}: max ${max / H} h, never later than ratio × lifetime`);
    t.ok(max - min > 0.95 * 500 * H * (1 - lo), `${schedule}: spread over the window`);
  }
});

t.test('a share read back from disk: used when it is one, else an on-schedule draw', async (t) => {
  t.equal(validShare(0.3), 0.3);
  t.equal(validShare(1), 1);
  for (const bad of [0, -0.1, 1.5, NaN, '0.3', null, undefined])
    t.equal(validShare(bad), undefined, `${String(bad)} is not a share`);
  t.equal(
    heldShare(0.3, () => 0.5),
    0.3,
  );
  t.equal(
    heldShare(undefined, () => 0.5),
    0.95,
  );
  t.equal(
    heldShare(7, () => 0),
    0.9,
  );
});

t.test(
  'a reload changing CERT_RENEW_RATIO: the same share of the new ratio × lifetime',
  async (t) => {
    const own = { issuer: 'agent', notBefore: 0, notAfter: 100 * H, renewShare: 0.5 };
    t.same(
      renewalAfterRatioChange(own, 0.6, 10 * H, () => 0.99),
      { at: 30 * H, share: 0.5 },
    );
    // No share kept (an older meta.json): an on-schedule draw.
    const noShare = { ...own, renewShare: undefined };
    t.same(
      renewalAfterRatioChange(noShare, 0.5, 10 * H, () => 0),
      { at: 45 * H, share: 0.9 },
    );
    // The bootstrap certificate, or an expired one: nothing to reschedule.
    t.equal(
      renewalAfterRatioChange({ ...own, issuer: 'bootstrap' }, 0.6, 10 * H, () => 0),
      undefined,
    );
    t.equal(
      renewalAfterRatioChange(own, 0.6, 100 * H, () => 0),
      undefined,
    );
  },
);

t.test(
  'retry delay while valid: 5 s first, doubling, capped, never past half the time left',
  async (t) => {
    const mid = (): number => 0.5; // no jitter
    const far = 1000 * H;
    t.equal(retryDelay(0, 0, far, mid), 5000);
    t.equal(retryDelay(1, 0, far, mid), 10_000);
    t.equal(retryDelay(2, 0, far, mid), 20_000);
    t.equal(retryDelay(20, 0, far, mid), RETRY_POLICY.maxMs, 'capped');
    t.equal(retryDelay(20, 0, 60_000, mid), 30_000, 'half of the one minute left');
    t.equal(retryDelay(20, 0, 1500, mid), 1000, 'floored at 1 s');
    t.equal(retryDelay(0, 0, 100 * H, mid), 5000, 'far from expiry: plain backoff');
  },
);

/** A seeded generator (mulberry32): the same draws on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

t.test('retry delay once expired (or without a certificate): seconds, jittered', async (t) => {
  const mid = (): number => 0.5;
  const table: [number, number, number | undefined, number, string][] = [
    // attempt, now, notAfter, expected (no jitter), why
    [0, 10, 5, EXPIRED_RETRY_POLICY.initialMs, 'first retry after expiry'],
    [1, 10, 5, 2 * EXPIRED_RETRY_POLICY.initialMs, 'doubling'],
    [5, 10, 5, EXPIRED_RETRY_POLICY.maxMs, 'capped at seconds, not 5 minutes'],
    [30, 10, 5, EXPIRED_RETRY_POLICY.maxMs, 'after a long outage too'],
    [30, 10, undefined, EXPIRED_RETRY_POLICY.maxMs, 'no certificate at all: the same'],
    [30, 10, 10, EXPIRED_RETRY_POLICY.maxMs, 'expiring this very moment'],
  ];
  for (const [attempt, now, notAfter, want, why] of table)
    t.equal(retryDelay(attempt, now, notAfter, mid), want, why);
  t.ok(EXPIRED_RETRY_POLICY.maxMs <= 30_000, 'a retry at most every few seconds');

  const rnd = seeded(7);
  const draws = Array.from({ length: 1000 }, () => retryDelay(30, 10, 5, rnd));
  const lo = Math.min(...draws);
  const hi = Math.max(...draws);
  t.ok(lo >= EXPIRED_RETRY_POLICY.maxMs * (1 - EXPIRED_RETRY_POLICY.jitter), `min ${lo}`);
  t.ok(hi <= EXPIRED_RETRY_POLICY.maxMs * (1 + EXPIRED_RETRY_POLICY.jitter), `max ${hi}`);
  t.ok(new Set(draws).size > 500, 'spread: never one fixed retry');
});

t.test('retry delay is jittered near expiry too (never a fixed retry)', async (t) => {
  const rnd = seeded(11);
  const near = Array.from({ length: 200 }, () => retryDelay(20, 0, 1500, rnd));
  t.ok(new Set(near).size > 100, 'the 1 s floor is spread');
  const half = Array.from({ length: 200 }, () => retryDelay(20, 0, 60_000, rnd));
  t.ok(new Set(half).size > 100, 'half of the time left is spread');
  t.ok(
    half.every((d) => d < 60_000),
    'and still well before expiry',
  );
});

t.test('a retry hint from the CA: never shorter than the hint, jittered above it', async (t) => {
  const far = 1000 * H;
  const table: [
    number,
    number | undefined,
    { hintMs?: number; overloaded?: boolean },
    number,
    string,
  ][] = [
    // attempt, notAfter, options, minimum, why
    [0, far, { hintMs: 30_000 }, 30_000, 'hint above the 5 s backoff'],
    [0, -5, { hintMs: 30_000 }, 30_000, 'hint wins over the fast retry after expiry'],
    [0, 60_000, { hintMs: 45_000 }, 45_000, 'hint wins over half the time left'],
    [0, far, { hintMs: 10 }, 4000, 'a hint below the backoff does not shorten it'],
    [
      0,
      -5,
      { overloaded: true },
      4000,
      'overloaded without a hint: the slow policy even when expired',
    ],
    [0, far, { hintMs: 10 * 24 * H }, MAX_RETRY_HINT_MS, 'an absurd hint is capped'],
  ];
  for (const [attempt, notAfter, opts, min, why] of table) {
    const rnd = seeded(3);
    const draws = Array.from({ length: 200 }, () => retryDelay(attempt, 0, notAfter, rnd, opts));
    t.ok(Math.min(...draws) >= min, `${why}: min ${Math.min(...draws)} >= ${min}`);
    t.ok(new Set(draws).size > 100, `${why}: jittered`);
  }
  const capped = Array.from({ length: 200 }, () =>
    retryDelay(0, 0, 1000 * H, seeded(5), { hintMs: 10 * 24 * H }),
  );
  t.ok(Math.max(...capped) <= MAX_RETRY_HINT_MS * 1.25, 'the capped hint stays near its cap');
});

t.test('first CSR: spread only while the certificate held is valid', async (t) => {
  const table: [number, number | undefined, number, number, number, string][] = [
    // now, notAfter, jitterMs, random, expected, why
    [0, undefined, 2000, 0.5, 0, 'no certificate: at once'],
    [10, 5, 2000, 0.5, 0, 'expired: at once'],
    [10, 10, 2000, 0.5, 0, 'expiring now: at once'],
    [0, 100 * H, 2000, 0.5, 1000, 'a valid bootstrap set: half of the spread'],
    [0, 100 * H, 2000, 0, 0, 'lowest draw'],
    [0, 100 * H, 2000, 0.999, 1998, 'highest draw'],
    [0, 100 * H, 0, 0.5, 0, 'spread off'],
    [0, 10_000, 2000, 0.999, 999, 'at most a tenth of the time left'],
  ];
  for (const [now, notAfter, jitterMs, r, want, why] of table)
    t.equal(
      firstCsrDelay(now, notAfter, jitterMs, () => r),
      want,
      why,
    );
  const rnd = seeded(9);
  const draws = Array.from({ length: 1000 }, () => firstCsrDelay(0, 100 * H, 2000, rnd));
  t.ok(Math.max(...draws) < 2000 && Math.min(...draws) >= 0, 'within the spread');
  t.ok(new Set(draws).size > 500, 'spread over it');
});

t.test('a renewal attempt is bounded by a deadline derived from CA_CALL_TIMEOUT', async (t) => {
  t.equal(rotationDeadlineMs(10_000), 50_000, 'default CA_CALL_TIMEOUT: 2 × 10 s + 30 s');
  t.ok(rotationDeadlineMs(100) >= 30_000, 'room for the local steps with a tiny timeout');
  t.ok(rotationDeadlineMs(600_000) <= 2 ** 31 - 1, 'the largest CA_CALL_TIMEOUT fits a timer');
});

t.test('backoff jitter bounds', async (t) => {
  const p = { initialMs: 200, multiplier: 2, maxMs: 30_000, jitter: 0.2 };
  t.equal(
    backoffDelay(p, 0, () => 0),
    160,
  );
  t.equal(
    backoffDelay(p, 0, () => 1),
    240,
  );
  t.equal(
    backoffDelay(p, 3, () => 0.5),
    1600,
  );
  t.equal(
    backoffDelay(p, 30, () => 1),
    30_000,
    'cap holds with jitter',
  );
  const b = new Backoff(p, () => 0.5);
  t.same([b.next(), b.next(), b.next()], [200, 400, 800]);
  b.reset();
  t.equal(b.next(), 200);
});

t.test(
  'giving up: only past expiry, and only when the CA refuses or the configuration is wrong',
  async (t) => {
    const now = 1_000_000;
    const refused = { code: 'AGENT_E_CA_REJECTED', retryable: false, exitCode: 1 };
    const auth = { code: 'AGENT_E_CA_AUTH', retryable: false, exitCode: 1 };
    const config = { code: 'AGENT_E_BOOTSTRAP_INVALID', retryable: false, exitCode: 78 };
    const away = { code: 'AGENT_E_CA_UNAVAILABLE', retryable: true, exitCode: 1 };
    const disk = { code: 'AGENT_E_CERT_STORE', retryable: false, exitCode: 1 };
    t.equal(giveUpReason(refused, now + 1, now), undefined, 'still valid: retry');
    t.equal(giveUpReason(refused, now, now), 'refused', 'expired at now');
    t.equal(giveUpReason(auth, undefined, now), 'refused', 'no certificate at all');
    t.equal(giveUpReason(config, now - 1, now), 'config');
    t.equal(giveUpReason(away, now - 1, now), undefined, 'the CA away is retried');
    t.equal(giveUpReason(disk, now - 1, now), undefined, 'a full disk is retried, not "refused"');
    t.ok(CA_REFUSALS.has('AGENT_E_CA_REJECTED'));
  },
);

t.test('reload: what applies at the next CSR, what needs a restart', async (t) => {
  const raw = (vars: Record<string, string>) => testConfig(vars).ca;
  const prev = raw({ WORKLOAD_IDENTITY: 'spiffe://cluster.local/ns/a/sa/b' });
  t.same(settingsChange(prev, prev), { applied: [], restartNeeded: [], next: prev });
  const c = settingsChange(
    prev,
    raw({
      CITADEL_ADDRESS: 'ca2:15012',
      CERT_RENEW_RATIO: '0.6',
      CERTS_DIR: '/elsewhere',
      CITADEL_ENV: 'gcp',
      WORKLOAD_IDENTITY: 'spiffe://cluster.local/ns/a/sa/c',
    }),
  );
  t.same(c.applied, ['CITADEL_ADDRESS', 'WORKLOAD_IDENTITY', 'CERT_RENEW_RATIO']);
  t.same(c.restartNeeded, ['CITADEL_ENV', 'CERTS_DIR']);
  t.equal(c.next.address, 'ca2:15012');
  t.equal(c.next.renewRatio, 0.6);
  t.equal(c.next.certsDir, prev.certsDir, 'read once at start: kept');
  t.equal(c.next.env, prev.env);
  t.equal(c.next.identity, 'spiffe://cluster.local/ns/a/sa/c');
  const dropped = settingsChange(prev, raw({}));
  t.same(dropped.applied, []);
  t.same(
    dropped.restartNeeded,
    ['WORKLOAD_IDENTITY'],
    'an identity no longer set is derived at start',
  );
  t.equal(dropped.next.identity, prev.identity);
  t.same(
    [...RELOADABLE, ...RESTART_ONLY].map(([k]) => k).sort(),
    Object.keys(prev).sort(),
    'every certificate setting is either reloadable or read at start',
  );
});

t.test(
  'start: keep our valid certificate until renewal is due; else a CSR, spread while valid',
  async (t) => {
    const now = 10 * H;
    const half = () => 0.5;
    const ours = { notBefore: now - H, notAfter: now + 9 * H, ours: true };
    t.same(
      startPlan(ours, now, 0.5, 2000, half),
      { keep: true, renewAt: now - H + 4.75 * H, share: 0.95 },
      'no share kept (an earlier version wrote the set): an on-schedule draw',
    );
    t.same(
      startPlan({ ...ours, share: 0.2 }, now, 0.5, 2000, half),
      { keep: false, heldUntil: now + 9 * H, delayMs: 1000 },
      'the share kept with the set puts the renewal at 1 h, in the past: due',
    );
    t.same(
      startPlan({ ...ours, share: 0.5 }, now, 0.5, 2000, half),
      { keep: true, renewAt: now - H + 2.5 * H, share: 0.5 },
      'the share kept with the set: the same point as before the restart',
    );
    t.same(
      startPlan({ ...ours, ours: false }, now, 0.5, 2000, half),
      { keep: false, heldUntil: now + 9 * H, delayMs: 1000 },
      'a bootstrap certificate: CSR, spread over the jitter',
    );
    t.same(
      startPlan({ notBefore: now - 9 * H, notAfter: now + H, ours: true }, now, 0.5, 2000, half),
      { keep: false, heldUntil: now + H, delayMs: 1000 },
      'ours but due',
    );
    t.same(
      startPlan({ ...ours, notAfter: now }, now, 0.5, 2000, half),
      { keep: false, heldUntil: undefined, delayMs: 0 },
      'expired: at once',
    );
    t.same(startPlan(undefined, now, 0.5, 2000, half), {
      keep: false,
      heldUntil: undefined,
      delayMs: 0,
    });
    const draws: number[] = [];
    const counted = () => {
      draws.push(1);
      return 0.5;
    };
    startPlan({ ...ours, ours: false }, now, 0.5, 0, counted);
    t.same(draws, [], 'no jitter configured: no randomness drawn');
  },
);
