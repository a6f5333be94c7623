// Fleet simulation: thousands of agents against one CA, with the agent's REAL renewal and retry
// decisions (`planRenewal`, `startPlan`, `retryDelay`, `firstCsrDelay` from src/certs/policy.ts),
// a simulated clock (an event queue: nothing sleeps) and a simulated CA that signs `capacity`
// CSRs per second. Pure: seeded randomness, no I/O but printing; the same arguments print the
// same table.
//
//   npx tsx bench/fleet.ts [--agents 10000] [--days 7] [--capacity 100] [--seed 1]
//                          [--ttl-hours 24] [--outage-at 71] [--outage-hours 2] [--restart-at 1]
//
// What each agent does is what CertManager does: at start it holds a bootstrap certificate (90
// days) and sends its first CSR at once; after each certificate it waits until the renewal point
// planRenewal() draws (off schedule for the first certificate since start and one after a
// failure, on schedule for a timely renewal); after a failure it waits retryDelay(failures - 1,
// now, notAfter of the certificate it holds). A call fails at once while the CA is down
// (connection refused), and after the client deadline (10 s, CA_CALL_TIMEOUT) when the CA has
// not served it by then.
//
// The CA serves one CSR every 1/capacity s, first come first served, in one of two models:
//   refuse: at most 1 s of work queued; a CSR beyond that gets RESOURCE_EXHAUSTED at once (what a
//           CA with admission control answers);
//   queue:  everything queues; a CSR not served within the client's deadline fails with
//           DEADLINE_EXCEEDED at the client, and the CA drops it without spending work on it.
// Both are printed. Load is counted as CSR attempts arriving at the CA (refused ones included).
//
// Scenario A: the whole fleet starts within one minute (e.g. a fleet installed or rebooted with
// no valid certificate of its own), run for `days`. Scenario B: the same, with the CA down for
// `outage-hours` from hour `outage-at`, and a sweep of longer outages up to just under half the
// certificate lifetime. Scenario C: the fleet of A rebooted at hour `restart-at`, every agent
// holding its own valid certificate (startPlan keeps it). Each runs with the agent's policy and
// with the previous one ("1.0-like / previous": renewal at ratio ± 10 %, defined below); C also
// with the agent's policy minus the renewal share kept with the set.
import { parseArgs } from 'node:util';
import {
  firstCsrDelay,
  MIN_RETRY_MS,
  planRenewal,
  RENEW_FROM,
  retryDelay,
  RETRY_POLICY,
  startPlan,
  type Schedule,
} from '../src/certs/policy';
import type { Random } from '../src/lib/backoff';
import { table } from './report';

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const DAY = 24 * H;
/** Istio 1.0's renewal point, the agent's default CERT_RENEW_RATIO. */
const RATIO = 0.5;
/** The bootstrap certificate an agent starts with (Citadel's istio.<sa> secrets: 90 days). */
const BOOTSTRAP_TTL = 90 * DAY;
/** CA_CALL_TIMEOUT's default. */
const DEADLINE = 10 * S;

// ---------------------------------------------------------------------------------------------
// Policies

interface Policy {
  readonly name: string;
  /** A certificate valid [nb, na] arrived at `now`: when to renew it, and the share to keep. */
  renewal(
    nb: number,
    na: number,
    schedule: Schedule,
    now: number,
    random: Random,
  ): { at: number; share: number };
  /**
   * At a restart, holding our own certificate valid [nb, na] (renewal share `share` kept with
   * it): when to renew it, or undefined when it is due (a CSR at start).
   */
  restart(nb: number, na: number, share: number, now: number, random: Random): number | undefined;
  retryDelay(attempt: number, now: number, notAfter: number | undefined, random: Random): number;
}

/** What the agent does: the functions CertManager calls (planRenewal, startPlan, retryDelay). */
const REAL: Policy = {
  name: 'agent',
  renewal: (nb, na, schedule, now, random) =>
    planRenewal({ notBefore: nb, notAfter: na }, RATIO, schedule, now, random),
  restart(nb, na, share, now, random) {
    const p = startPlan({ notBefore: nb, notAfter: na, ours: true, share }, now, RATIO, 0, random);
    return p.keep ? p.renewAt : undefined;
  },
  retryDelay: (attempt, now, notAfter, random) => retryDelay(attempt, now, notAfter, random),
};

/**
 * The agent's policy without the renewal share kept with the set: a restart draws the kept
 * certificate's renewal point anew (on schedule). For the restart scenario only: it shows why
 * the share is kept.
 */
const REAL_NO_SHARE: Policy = {
  ...REAL,
  name: 'agent, share not kept',
  restart: (nb, na, _share, now, random) => REAL.restart(nb, na, NaN, now, random),
};

/**
 * "1.0-like / previous": the agent's policy before issue 13, kept here for comparison (retryDelay
 * is the same). Renewal at ratio × lifetime ± 10 % of the wait (Istio 1.0 had no jitter, SPIRE's
 * spread added), whatever the certificate was obtained for; a restart draws it anew.
 */
const PREVIOUS_JITTER = 0.1;
function previousRenewAt(nb: number, na: number, random: Random): number {
  const lifetime = Math.max(0, na - nb);
  const wait = lifetime * RATIO * (1 + PREVIOUS_JITTER * (2 * random() - 1));
  return Math.min(na, nb + Math.round(wait));
}
const PREVIOUS: Policy = {
  name: 'previous (1.0-like)',
  renewal: (nb, na, _schedule, _now, random) => ({ at: previousRenewAt(nb, na, random), share: 1 }),
  restart(nb, na, _share, now, random) {
    const at = previousRenewAt(nb, na, random);
    return at > now ? at : undefined;
  },
  retryDelay: (attempt, now, notAfter, random) => retryDelay(attempt, now, notAfter, random),
};

// ---------------------------------------------------------------------------------------------
// Randomness and the event queue

/** sfc32: small, fast, seeded; the sequence depends only on the seed. */
function seeded(seed: number): Random {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}

/** A binary min-heap of (time, agent): each agent has exactly one pending event. */
class EventQueue {
  private readonly at: Float64Array;
  private readonly who: Int32Array;
  private n = 0;
  constructor(size: number) {
    this.at = new Float64Array(size);
    this.who = new Int32Array(size);
  }
  get size(): number {
    return this.n;
  }
  push(t: number, agent: number): void {
    let i = this.n++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.at[p]! <= t) break;
      this.at[i] = this.at[p]!;
      this.who[i] = this.who[p]!;
      i = p;
    }
    this.at[i] = t;
    this.who[i] = agent;
  }
  peekTime(): number {
    return this.at[0]!;
  }
  /** Removes the earliest event and returns its agent. */
  pop(): number {
    const top = this.who[0]!;
    const t = this.at[--this.n]!;
    const w = this.who[this.n]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.n) break;
      if (c + 1 < this.n && this.at[c + 1]! < this.at[c]!) c++;
      if (this.at[c]! >= t) break;
      this.at[i] = this.at[c]!;
      this.who[i] = this.who[c]!;
      i = c;
    }
    this.at[i] = t;
    this.who[i] = w;
    return top;
  }
}

// ---------------------------------------------------------------------------------------------
// The simulation

type CaModel = 'refuse' | 'queue';

interface SimOptions {
  readonly agents: number;
  readonly days: number;
  readonly capacity: number;
  readonly seed: number;
  readonly ttl: number;
  readonly startWindow: number;
  readonly model: CaModel;
  readonly outage?: { readonly from: number; readonly to: number };
  /** The whole fleet goes down at `at` and comes back within `startWindow` (a reboot). */
  readonly restart?: { readonly at: number };
}

interface SimResult {
  /** CSR attempts arriving at the CA, per second of simulated time. */
  readonly perSecond: Int32Array;
  readonly attempts: number;
  readonly issued: number;
  readonly refused: number;
  readonly timedOut: number;
  readonly unavailable: number;
  /** When the last agent got its first certificate. */
  readonly startDrained: number;
  /** When the last agent completed its first renewal (its second certificate). */
  readonly firstWaveEnd: number;
  /** Most CSRs queued at the CA at once. */
  readonly maxQueue: number;
  /** Most agents at once whose renewal (or first CSR) was due and not yet done, after the start. */
  readonly maxWaitingAfterStart: number;
  /** Agents whose certificate at some point had less than 10 % of its lifetime left / expired. */
  readonly near: number;
  readonly expired: number;
  /** Agents due and waiting when the CA came back; when the last of them got a certificate. */
  readonly waitingAtRecovery: number;
  readonly recoveryDrained: number;
  /** Agents that sent a CSR at the restart (their certificate was due). */
  readonly csrAtRestart: number;
}

function simulate(o: SimOptions, policy: Policy): SimResult {
  const random = seeded(o.seed);
  const end = o.days * DAY;
  const perSecond = new Int32Array(Math.ceil(end / S) + 1);
  let q = new EventQueue(o.agents);
  // Per agent: the certificate it holds, whether it is its own, whether a call is in flight and
  // how it will end, failures in a row, when its current wait for a certificate began.
  const notBefore = new Float64Array(o.agents);
  const notAfter = new Float64Array(o.agents);
  const own = new Uint8Array(o.agents);
  const inFlight = new Uint8Array(o.agents); // 0 none, 1 will succeed, 2 will fail
  const failures = new Int32Array(o.agents);
  const certs = new Int32Array(o.agents);
  // The renewal share kept with the set; whether the pending event is the timely renewal of the
  // certificate held (on schedule); whether the pending event is the agent coming back up.
  const share = new Float64Array(o.agents);
  const timerOn = new Uint8Array(o.agents);
  const restarting = new Uint8Array(o.agents);
  const dueSince = new Float64Array(o.agents).fill(NaN);
  const minLeft = new Float64Array(o.agents).fill(Infinity);
  const service = S / o.capacity;
  const queueLimit = o.model === 'refuse' ? S : Infinity;
  const out = o.outage;
  const down = (t: number): boolean => out !== undefined && t >= out.from && t < out.to;

  let busyUntil = 0;
  let attempts = 0;
  let issued = 0;
  let refused = 0;
  let timedOut = 0;
  let unavailable = 0;
  let startDrained = 0;
  let firstWaveEnd = 0;
  let maxQueue = 0;
  let waiting = 0;
  let maxWaitingAfterStart = 0;
  let haveCert = 0;
  let waitingAtRecovery = -1;
  let recoveryDrained = 0;
  let restarted = false;
  let csrAtRestart = 0;
  const waitingSinceBefore = new Uint8Array(o.agents); // due before the CA came back

  for (let i = 0; i < o.agents; i++) {
    notBefore[i] = 0;
    notAfter[i] = BOOTSTRAP_TTL;
    q.push(random() * o.startWindow, i);
    dueSince[i] = 0;
    waiting++;
  }

  const fail = (i: number, t: number): void => {
    timerOn[i] = 0;
    failures[i]!++;
    const d = policy.retryDelay(failures[i]! - 1, t, notAfter[i], random);
    q.push(t + d, i);
  };

  while (q.size > 0 && q.peekTime() < end) {
    if (o.restart && !restarted && q.peekTime() >= o.restart.at) {
      // Every agent goes down (calls in flight are lost) and comes back within the window.
      restarted = true;
      q = new EventQueue(o.agents);
      for (let j = 0; j < o.agents; j++) {
        inFlight[j] = 0;
        failures[j] = 0;
        restarting[j] = 1;
        q.push(o.restart.at + random() * o.startWindow, j);
      }
      continue;
    }
    const t = q.peekTime();
    const i = q.pop();
    if (restarting[i]) {
      // CertManager.start: keep our valid certificate until its renewal (startPlan), else a CSR
      // spread by CERT_FIRST_CSR_JITTER (2 s) while the certificate held is valid.
      restarting[i] = 0;
      const valid = notAfter[i]! > t;
      const at =
        own[i] && valid
          ? policy.restart(notBefore[i]!, notAfter[i]!, share[i]!, t, random)
          : undefined;
      if (at !== undefined) {
        timerOn[i] = 1;
        q.push(at, i);
      } else {
        csrAtRestart++;
        timerOn[i] = 0;
        q.push(t + firstCsrDelay(t, valid ? notAfter[i] : undefined, 2 * S, random), i);
      }
      continue;
    }
    if (out && waitingAtRecovery < 0 && t >= out.to) {
      waitingAtRecovery = waiting;
      for (let j = 0; j < o.agents; j++) waitingSinceBefore[j] = Number.isNaN(dueSince[j]!) ? 0 : 1;
    }
    if (inFlight[i] === 1) {
      // A certificate arrives.
      inFlight[i] = 0;
      issued++;
      if (own[i]) minLeft[i] = Math.min(minLeft[i]!, notAfter[i]! - t);
      const schedule: Schedule = timerOn[i] && failures[i] === 0 ? 'on' : 'off';
      own[i] = 1;
      notBefore[i] = t;
      notAfter[i] = t + o.ttl;
      certs[i]!++;
      failures[i] = 0;
      if (certs[i] === 1) {
        startDrained = Math.max(startDrained, t);
        haveCert++;
      }
      if (certs[i] === 2) firstWaveEnd = Math.max(firstWaveEnd, t);
      if (waitingSinceBefore[i]) {
        waitingSinceBefore[i] = 0;
        recoveryDrained = Math.max(recoveryDrained, t);
      }
      dueSince[i] = NaN;
      waiting--;
      const r = policy.renewal(t, t + o.ttl, schedule, t, random);
      share[i] = r.share;
      timerOn[i] = 1;
      q.push(Math.max(r.at, t), i);
      continue;
    }
    if (inFlight[i] === 2) {
      inFlight[i] = 0;
      fail(i, t);
      continue;
    }
    // A CSR is sent.
    if (Number.isNaN(dueSince[i]!)) {
      dueSince[i] = t;
      waiting++;
      if (haveCert === o.agents) maxWaitingAfterStart = Math.max(maxWaitingAfterStart, waiting);
    }
    attempts++;
    perSecond[Math.floor(t / S)]!++;
    if (down(t)) {
      unavailable++;
      fail(i, t);
      continue;
    }
    const wait = Math.max(0, busyUntil - t);
    maxQueue = Math.max(maxQueue, Math.ceil(wait / service));
    if (wait > queueLimit) {
      refused++;
      fail(i, t);
      continue;
    }
    if (wait >= DEADLINE) {
      timedOut++;
      inFlight[i] = 2;
      q.push(t + DEADLINE, i);
      continue;
    }
    const done = Math.max(busyUntil, t) + service;
    if (out && t < out.from && done >= out.from) {
      // Still queued when the CA goes down: the connection drops.
      unavailable++;
      inFlight[i] = 2;
      q.push(out.from, i);
      continue;
    }
    busyUntil = done;
    inFlight[i] = 1;
    q.push(done, i);
  }

  let near = 0;
  let expired = 0;
  for (let i = 0; i < o.agents; i++) {
    // Agents still waiting at the end: what they have left then counts too.
    const left = own[i] ? Math.min(minLeft[i]!, notAfter[i]! - end) : minLeft[i]!;
    if (left < 0.1 * o.ttl) near++;
    if (left <= 0) expired++;
  }
  return {
    perSecond,
    attempts,
    issued,
    refused,
    timedOut,
    unavailable,
    startDrained,
    firstWaveEnd,
    maxQueue,
    maxWaitingAfterStart,
    near,
    expired,
    waitingAtRecovery: Math.max(0, waitingAtRecovery),
    recoveryDrained,
    csrAtRestart,
  };
}

// ---------------------------------------------------------------------------------------------
// Measures

/** Counts per `bin` seconds over [from, to) seconds. */
function bins(perSecond: Int32Array, from: number, to: number, bin: number): number[] {
  const r: number[] = [];
  for (let s = from; s + bin <= to; s += bin) {
    let n = 0;
    for (let k = s; k < s + bin; k++) n += perSecond[k]!;
    r.push(n);
  }
  return r;
}

function peakToMean(xs: number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.max(...xs) / mean;
}

/** The same number of events at uniformly random moments: the floor any randomised policy hits. */
function idealPeakToMean(events: number, seconds: number, bin: number, random: Random): number {
  const counts = new Int32Array(Math.floor(seconds / bin));
  for (let k = 0; k < events; k++) counts[Math.floor(random() * counts.length)]!++;
  return peakToMean([...counts]);
}

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);
const hours = (ms: number): string => `${f1(ms / H)} h`;
const minutes = (ms: number): string => `${f1(ms / MIN)} min`;

// ---------------------------------------------------------------------------------------------

function main(): void {
  const { values } = parseArgs({
    options: {
      agents: { type: 'string', default: '10000' },
      days: { type: 'string', default: '7' },
      capacity: { type: 'string', default: '100' },
      seed: { type: 'string', default: '1' },
      'ttl-hours': { type: 'string', default: '24' },
      'outage-at': { type: 'string', default: '71' },
      'outage-hours': { type: 'string', default: '2' },
      'restart-at': { type: 'string', default: '1' },
    },
  });
  const num = (k: keyof typeof values): number => {
    const v = Number(values[k]);
    if (!(v > 0)) throw new Error(`--${k} must be a positive number, not ${values[k]}`);
    return v;
  };
  const base = {
    agents: Math.round(num('agents')),
    days: num('days'),
    capacity: num('capacity'),
    seed: Math.round(num('seed')),
    ttl: num('ttl-hours') * H,
    startWindow: MIN,
  };
  const outFrom = num('outage-at') * H;
  const outLen = num('outage-hours') * H;
  const restartAt = num('restart-at') * H;
  const t0 = performance.now();
  const policies = [PREVIOUS, REAL];
  const models: CaModel[] = ['refuse', 'queue'];

  console.log(
    `fleet: ${base.agents} agents started within 1 min, ${hours(base.ttl)} certificates, ${base.days} days, ` +
      `CA ${base.capacity} CSR/s, client deadline ${DEADLINE / S} s, seed ${base.seed}`,
  );
  console.log(
    `retries: ${RETRY_POLICY.initialMs / S} s doubling to ${RETRY_POLICY.maxMs / MIN} min, ±${RETRY_POLICY.jitter * 100} %, ` +
      `at most half the time left (≥ ${MIN_RETRY_MS / S} s); renew at ${RATIO} of the lifetime: ` +
      `agent ${RENEW_FROM.on}–1 × that on schedule, ${RENEW_FROM.off}–1 off schedule; previous ±${PREVIOUS_JITTER * 100} %`,
  );
  console.log(
    'CA models: refuse = ≤ 1 s of work queued, the rest RESOURCE_EXHAUSTED at once; ' +
      'queue = FIFO, DEADLINE_EXCEEDED after 10 s',
  );

  // Scenario A
  const goal = 1.5;
  const aRows: string[][] = [];
  const verdicts: string[] = [];
  const ideal = seeded(base.seed + 1000);
  for (const policy of policies) {
    for (const model of models) {
      const r = simulate({ ...base, model }, policy);
      const from = Math.ceil(r.firstWaveEnd / S);
      const to = Math.floor((base.days * DAY) / S);
      const m1 = bins(r.perSecond, from, to, 60);
      const m15 = bins(r.perSecond, from, to, 900);
      const events = m1.reduce((a, b) => a + b, 0);
      const p1 = peakToMean(m1);
      const p15 = peakToMean(m15);
      const i1 = idealPeakToMean(events, to - from, 60, ideal);
      const i15 = idealPeakToMean(events, to - from, 900, ideal);
      aRows.push([
        policy.name,
        model,
        `${f1(r.startDrained / S)} s`,
        hours(r.firstWaveEnd),
        f1(events / m1.length),
        `${f2(p1)} (${f2(i1)})`,
        `${f2(p15)} (${f2(i15)})`,
        String(r.maxQueue),
        String(r.maxWaitingAfterStart),
        f2(r.issued / base.agents / base.days),
        String(r.near),
        String(r.expired),
      ]);
      if (model === 'refuse')
        verdicts.push(
          `  ${policy.name}: peak/mean over 15-min bins ${f2(p15)} → goal ≤ ${goal} ${p15 <= goal ? 'MET' : 'MISSED'}` +
            `; per minute ${f2(p1)} against ${f2(i1)} for ideally uniform random arrivals`,
        );
    }
  }
  console.log(
    `\nA. fleet start, no outage. Load from the end of the first renewal wave to the end (CSR attempts at the CA):`,
  );
  console.log(
    table(
      [
        'policy',
        'CA',
        'start drained',
        '1st wave end',
        'CSR/min',
        'peak/mean 1 min (ideal)',
        '15 min (ideal)',
        'max CA queue',
        'max waiting*',
        'certs/agent/day',
        '≤10 % left',
        'expired',
      ],
      aRows,
      2,
    ),
  );
  console.log(
    '  * agents due and not yet renewed at once, after the start burst; (ideal) = the same CSRs at uniformly random moments',
  );
  console.log(verdicts.join('\n'));

  // Scenario B
  const bRows: string[][] = [];
  const bVerdicts: string[] = [];
  const sweep = [outLen, 0.45 * base.ttl, 0.49 * base.ttl];
  for (const policy of policies) {
    for (const model of models) {
      for (const len of model === 'refuse' ? sweep : [outLen]) {
        const outage = { from: outFrom, to: outFrom + len };
        const r = simulate({ ...base, model, outage }, policy);
        const from = Math.ceil(outage.to / S);
        const hour = bins(r.perSecond, from, from + 3600, 10).map((n) => n / 10);
        const peak = Math.max(...hour);
        // All due agents at the retry cap, phases uniform: they come back over (1 - jitter) × cap.
        const spread = r.waitingAtRecovery / ((RETRY_POLICY.maxMs * (1 - RETRY_POLICY.jitter)) / S);
        const bound = Math.max(base.capacity, spread);
        const after = bins(r.perSecond, from + 3600, Math.floor((base.days * DAY) / S), 900);
        bRows.push([
          policy.name,
          model,
          hours(len),
          String(r.waitingAtRecovery),
          f1(peak),
          f1(spread),
          f2(peak / base.capacity),
          minutes(r.recoveryDrained - outage.to),
          f2(peakToMean(after)),
          String(r.near),
          String(r.expired),
        ]);
        // Random phases make 10-s counts noisy: allow three standard deviations of a Poisson count.
        const within = peak * 10 <= bound * 10 + 3 * Math.sqrt(bound * 10);
        if (model === 'refuse' && len < base.ttl / 2)
          bVerdicts.push(
            `  ${policy.name}, ${hours(len)} outage: recovery peak ${f1(peak)}/s ${within ? 'within' : 'ABOVE'} ` +
              `max(capacity, backoff spread) = ${f1(bound)}/s; ${r.expired === 0 ? 'no certificate expired' : `${r.expired} certificates EXPIRED`}`,
          );
      }
    }
  }
  console.log(
    `\nB. the same with the CA down from ${hours(outFrom)} (and, with the refuse model, longer outages up to just under half the lifetime):`,
  );
  console.log(
    table(
      [
        'policy',
        'CA',
        'outage',
        'due at return',
        'peak/s (10 s)',
        'backoff spread/s',
        'peak/capacity',
        'drained in',
        'peak/mean after +1 h (15 min)',
        '≤10 % left',
        'expired',
      ],
      bRows,
      2,
    ),
  );
  console.log(
    '  backoff spread = due agents / (5 min × 0.8): their rate if every one is at the retry cap with a uniform phase;\n' +
      '  "within" allows 3 standard deviations of a Poisson count per 10-s bin',
  );
  console.log(bVerdicts.join('\n'));

  // Scenario C
  const cRows: string[][] = [];
  for (const policy of [PREVIOUS, REAL_NO_SHARE, REAL]) {
    const r = simulate({ ...base, model: 'refuse', restart: { at: restartAt } }, policy);
    const from = Math.ceil(Math.max(r.firstWaveEnd, restartAt + RATIO * base.ttl) / S);
    const to = Math.floor((base.days * DAY) / S);
    const m15 = bins(r.perSecond, from, to, 900);
    const day = bins(r.perSecond, Math.ceil(restartAt / S), Math.ceil((restartAt + DAY) / S), 900);
    cRows.push([
      policy.name,
      String(r.csrAtRestart),
      f2(peakToMean(day)),
      f2(peakToMean(m15)),
      f2(r.issued / base.agents / base.days),
      String(r.near),
      String(r.expired),
    ]);
  }
  console.log(
    `\nC. the same fleet rebooted (every agent down, back within 1 min) at ${hours(restartAt)}, holding its own certificates; CA refuse model:`,
  );
  console.log(
    table(
      [
        'policy',
        'CSRs at the reboot',
        'peak/mean 15 min, the day after',
        'from one renewal period after to the end',
        'certs/agent/day',
        '≤10 % left',
        'expired',
      ],
      cRows,
    ),
  );
  console.log(`\n(${f1((performance.now() - t0) / S)} s)`);
}

main();
