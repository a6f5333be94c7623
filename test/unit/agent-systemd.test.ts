import t from 'tap';
import { Agent } from '../../src/agent';
import type { Component, ComponentStatus } from '../../src/component';
import type { AgentConfig } from '../../src/config/types';
import { FakeClock } from '../../src/lib/clock';
import type { Logger } from '../../src/observe/logger';
import type { Notifier } from '../../src/systemd/notify';
import { testConfig } from '../helpers/config';
import { testLogger } from '../helpers/deps';

// What the orchestrator tells systemd, and when: READY=1 only once every component has started,
// STATUS= a one-line summary, WATCHDOG=1 at half the interval, STOPPING=1, RELOADING=1 … READY=1.

function config(vars: Record<string, string> = {}): AgentConfig {
  return testConfig(vars, { cluster: 'cluster.env', sidecar: 'sidecar.env' });
}

function recorder(watchdogMs?: number): Notifier & { sent: string[] } {
  const sent: string[] = [];
  const push = (s: string): Promise<void> => {
    sent.push(s);
    return Promise.resolve();
  };
  return {
    sent,
    enabled: true,
    watchdogMs,
    ready: (status) => push(status === undefined ? 'READY=1' : `READY=1 STATUS=${status}`),
    status: (text) => push(`STATUS=${text}`),
    watchdog: () => push('WATCHDOG=1'),
    stopping: () => push('STOPPING=1'),
    reloading: (mono) => push(`RELOADING=1 MONOTONIC_USEC=${mono > 0n ? 'set' : 'zero'}`),
  };
}

class Gate implements Component {
  private open!: () => void;
  private readonly opened = new Promise<void>((r) => (this.open = r));
  started = false;
  stopped = false;
  reloaded: AgentConfig | undefined;
  constructor(
    readonly name: string,
    private readonly phrase: string,
  ) {}
  release(): void {
    this.open();
  }
  async start(): Promise<void> {
    await this.opened;
    this.started = true;
  }
  reload(c: AgentConfig): Promise<void> {
    this.reloaded = c;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
  status(): ComponentStatus {
    return { ready: this.started, summary: this.phrase };
  }
}

const silent = (): Logger => testLogger({ level: 'info' }).log;

void t.test(
  'READY=1 only after every component has started, with the summary as STATUS=',
  async (t) => {
    const clock = new FakeClock();
    const n = recorder();
    const certs = new Gate('certs', 'cert valid until 2026-04-01');
    const capture = new Gate('capture', 'capture on');
    const agent = new Agent(config(), [certs, capture], {
      log: silent(),
      clock,
      notifier: n,
      statusFile: undefined,
    });
    const started = agent.start();
    await clock.advance(10);
    t.notOk(
      n.sent.some((s) => s.startsWith('READY=1')),
      'no READY while certs is still starting',
    );
    certs.release();
    await clock.advance(10);
    t.notOk(
      n.sent.some((s) => s.startsWith('READY=1')),
      'no READY while capture is still starting',
    );
    capture.release();
    await started;
    t.equal(n.sent.at(-1), 'READY=1 STATUS=cert valid until 2026-04-01; capture on');
    t.equal(n.sent[0], 'STATUS=starting');
    await agent.stop();
  },
);

void t.test('with no component enabled the agent is ready at once and says so', async (t) => {
  const n = recorder();
  const agent = new Agent(config(), [], {
    log: silent(),
    clock: new FakeClock(),
    notifier: n,
    statusFile: undefined,
  });
  await agent.start();
  t.same(n.sent, ['STATUS=starting', 'READY=1 STATUS=ready; no components enabled']);
  await agent.stop();
});

void t.test('WATCHDOG=1 every half interval from start until stop', async (t) => {
  const clock = new FakeClock();
  const n = recorder(30_000);
  const certs = new Gate('certs', 'cert ok');
  const agent = new Agent(config(), [certs], {
    log: silent(),
    clock,
    notifier: n,
    statusFile: undefined,
  });
  const started = agent.start();
  const pings = (): number => n.sent.filter((s) => s === 'WATCHDOG=1').length;
  t.equal(pings(), 1, 'first ping at once, also while still starting');
  await clock.advance(14_999);
  t.equal(pings(), 1);
  await clock.advance(1);
  t.equal(pings(), 2, 'second ping at 15 s = WATCHDOG_USEC/2');
  certs.release();
  await started;
  await clock.advance(60_000);
  t.equal(pings(), 6);
  await agent.stop();
  t.equal(clock.pending, 0, 'no timer left after stop');
  await clock.advance(60_000);
  t.equal(pings(), 6, 'no ping after stop');
});

void t.test('stop sends STOPPING=1 first, then stops components in reverse order', async (t) => {
  const n = recorder();
  const order: string[] = [];
  const mk = (name: string): Component => ({
    name,
    start: () => Promise.resolve(),
    stop: () => {
      order.push(`${name} stop (sent so far: ${n.sent.at(-1)})`);
      return Promise.resolve();
    },
    status: () => ({ ready: true, summary: name }),
  });
  const agent = new Agent(config(), [mk('certs'), mk('sidecar')], {
    log: silent(),
    clock: new FakeClock(),
    notifier: n,
    statusFile: undefined,
  });
  await agent.start();
  await agent.stop();
  t.same(order, ['sidecar stop (sent so far: STOPPING=1)', 'certs stop (sent so far: STOPPING=1)']);
  await agent.stop();
  t.equal(n.sent.filter((s) => s === 'STOPPING=1').length, 1, 'a second stop sends nothing more');
});

void t.test(
  'reload: RELOADING=1 with MONOTONIC_USEC, components get the new config, READY=1; log level applies',
  async (t) => {
    const n = recorder();
    const { log, records } = testLogger({ level: 'info' });
    const child = log.child({ component: 'certs' });
    const certs = new Gate('certs', 'cert ok');
    certs.release();
    const agent = new Agent(config(), [certs], {
      log,
      clock: new FakeClock(),
      notifier: n,
      statusFile: undefined,
    });
    await agent.start();
    child.debug('before reload');
    const next = config({ ISTIO_AGENT_LOG_LEVEL: 'debug' });
    await agent.reload(next);
    child.debug('after reload');
    t.same(n.sent.slice(-2), ['RELOADING=1 MONOTONIC_USEC=set', 'READY=1 STATUS=cert ok']);
    t.equal(certs.reloaded, next);
    t.equal(agent.currentConfig, next);
    t.notOk(
      records.some((r) => r.msg.includes('before reload')),
      'debug was off before',
    );
    t.ok(
      records.some((r) => r.msg.includes('after reload')),
      'a component logger follows the new level',
    );
    t.ok(records.some((r) => r.msg.includes('log level is now debug')));
    await agent.stop();
  },
);

void t.test(
  'reload while not ready is ignored (no RELOADING=1 without a READY=1 after it)',
  async (t) => {
    const n = recorder();
    const certs = new Gate('certs', 'cert ok');
    const agent = new Agent(config(), [certs], {
      log: silent(),
      clock: new FakeClock(),
      notifier: n,
      statusFile: undefined,
    });
    const started = agent.start();
    await agent.reload(config());
    t.notOk(n.sent.some((s) => s.startsWith('RELOADING')));
    certs.release();
    await started;
    await agent.stop();
  },
);

void t.test(
  'while a component is starting, STATUS= says what it waits for or what is wrong',
  async (t) => {
    const n = recorder();
    let problem: string | undefined;
    let release!: () => void;
    const certs: Component = {
      name: 'certs',
      start: () => new Promise<void>((r) => (release = r)),
      stop: () => Promise.resolve(),
      status: () => ({ ready: false, summary: 'cert: none', ...(problem ? { problem } : {}) }),
    };
    const agent = new Agent(config(), [certs], {
      log: silent(),
      clock: new FakeClock(),
      notifier: n,
      statusFile: undefined,
    });
    const started = agent.start();
    await new Promise((r) => setImmediate(r));
    t.equal(agent.summary(), 'starting; waiting for certs');
    problem = '[AGENT_E_CA_UNAVAILABLE] the CA is unavailable';
    agent.refresh(); // what deps.changed() does
    await new Promise((r) => setImmediate(r));
    t.equal(
      n.sent.at(-1),
      'STATUS=certs: [AGENT_E_CA_UNAVAILABLE] the CA is unavailable; starting',
    );
    problem = undefined;
    release();
    await started;
    // Started, but the component says it is not ready: READY=1 still, and STATUS= says degraded.
    t.match(n.sent.at(-1), /^READY=1 STATUS=degraded: cert: none$/);
    t.equal(agent.status().state, 'degraded');
    t.same(agent.status().notReady, { certs: 'cert: none' });
    await agent.stop();
  },
);
