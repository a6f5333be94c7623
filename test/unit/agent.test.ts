import t from 'tap';
import { readFileSync } from 'node:fs';
import { Agent } from '../../src/agent';
import type { Component } from '../../src/component';
import { FakeClock } from '../../src/lib/clock';
import { AgentError } from '../../src/lib/errors';
import { silentLogger } from '../../src/observe/logger';
import { statusFilePath } from '../../src/observe/status-file';
import { createNotifier } from '../../src/systemd/notify';
import { tmpDir } from '../helpers/tmp';
import { testConfig } from '../helpers/config';
import { testLogger } from '../helpers/deps';

const config = testConfig({}, { cluster: 'c', sidecar: 's' });

function recorder(env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '10000000' }) {
  const sent: string[][] = [];
  const notifier = createNotifier(env, silentLogger(), (fields) => {
    sent.push([...fields]);
    return Promise.resolve();
  });
  return { sent, notifier };
}

function fake(
  name: string,
  events: string[],
  opts: { fail?: boolean; failPreflight?: boolean; rollback?: boolean } = {},
): Component {
  let ready = false;
  return {
    name,
    preflight() {
      events.push(`preflight ${name}`);
      if (opts.failPreflight)
        return Promise.reject(new AgentError('AGENT_E_SIDECAR_BINARY', `${name} has no binary`));
      return Promise.resolve();
    },
    ...(opts.rollback
      ? {
          rollback() {
            events.push(`rollback ${name}`);
            ready = false;
            return Promise.resolve();
          },
        }
      : {}),
    start() {
      events.push(`start ${name}`);
      if (opts.fail)
        return Promise.reject(new AgentError('AGENT_E_IPTABLES_APPLY', `${name} broke`));
      ready = true;
      return Promise.resolve();
    },
    reload() {
      events.push(`reload ${name}`);
      return Promise.resolve();
    },
    stop() {
      events.push(`stop ${name}`);
      ready = false;
      return Promise.resolve();
    },
    status: () => ({ ready, summary: `${name} ${ready ? 'on' : 'off'}` }),
  };
}

t.test('starts in order, READY with the summary, stops in reverse', async (t) => {
  const events: string[] = [];
  const { sent, notifier } = recorder();
  const clock = new FakeClock();
  const statusFile = statusFilePath(tmpDir(t, 'agent'));
  const agent = new Agent(config, [fake('certs', events), fake('capture', events)], {
    log: silentLogger(),
    clock,
    notifier,
    statusFile,
  });
  await agent.start();
  t.same(events, ['preflight certs', 'preflight capture', 'start certs', 'start capture']);
  const ready = sent.find((f) => f[0] === 'READY=1');
  t.same(ready, ['READY=1', 'STATUS=certs on; capture on']);
  t.ok(sent.findIndex((f) => f[0] === 'READY=1') > 0, 'READY after a starting status');
  await agent.stop();
  t.same(events.slice(4), ['stop capture', 'stop certs']);
  t.ok(sent.some((f) => f[0] === 'STOPPING=1'));
  const st = JSON.parse(readFileSync(statusFile, 'utf8')) as { state: string };
  t.equal(st.state, 'stopped');
});

t.test('watchdog pings at half the interval from the event loop', async (t) => {
  const { sent, notifier } = recorder({
    NOTIFY_SOCKET: '/run/x',
    WATCHDOG_USEC: '10000000',
    WATCHDOG_PID: String(process.pid),
  });
  const clock = new FakeClock();
  const agent = new Agent(config, [], {
    log: silentLogger(),
    clock,
    notifier,
    statusFile: undefined,
  });
  await agent.start();
  const pings = (): number => sent.filter((f) => f[0] === 'WATCHDOG=1').length;
  t.equal(pings(), 1, 'one at start');
  await clock.advance(4999);
  t.equal(pings(), 1);
  await clock.advance(1);
  t.equal(pings(), 2, 'next one 5 s later');
  await clock.advance(20_000);
  t.equal(pings(), 6);
  await agent.stop();
  await clock.advance(60_000);
  t.equal(pings(), 6, 'no pings after stop');
});

t.test('watchdog meant for another pid is ignored', async (t) => {
  const { sent, notifier } = recorder({
    NOTIFY_SOCKET: '/run/x',
    WATCHDOG_USEC: '10000000',
    WATCHDOG_PID: '1',
  });
  const agent = new Agent(config, [], {
    log: silentLogger(),
    clock: new FakeClock(),
    notifier,
    statusFile: undefined,
  });
  await agent.start();
  t.equal(sent.filter((f) => f[0] === 'WATCHDOG=1').length, 0);
  await agent.stop();
});

t.test('no NOTIFY_SOCKET: nothing is sent', async (t) => {
  const { sent, notifier } = recorder({});
  const agent = new Agent(config, [fake('a', [])], {
    log: silentLogger(),
    clock: new FakeClock(),
    notifier,
    statusFile: undefined,
  });
  await agent.start();
  await agent.stop();
  t.same(sent, []);
});

t.test(
  'a failing component: earlier ones are stopped, start rejects with its error, no READY',
  async (t) => {
    const events: string[] = [];
    const { sent, notifier } = recorder();
    const agent = new Agent(
      config,
      [fake('certs', events), fake('capture', events, { fail: true }), fake('dns', events)],
      {
        log: silentLogger(),
        clock: new FakeClock(),
        notifier,
        statusFile: undefined,
      },
    );
    await t.rejects(agent.start(), { code: 'AGENT_E_IPTABLES_APPLY' });
    t.same(
      events.filter((e) => !e.startsWith('preflight')),
      ['start certs', 'start capture', 'stop capture', 'stop certs'],
      'the failing one is undone too (it may have changed part of the host)',
    );
    t.notOk(sent.some((f) => f[0] === 'READY=1'));
  },
);

t.test(
  'every preflight runs before any start; a failed preflight starts nothing and exits with its code',
  async (t) => {
    const events: string[] = [];
    const agent = new Agent(
      config,
      [
        fake('certs', events),
        fake('capture', events),
        fake('dns', events),
        fake('sidecar', events, { failPreflight: true }),
      ],
      {
        log: silentLogger(),
        clock: new FakeClock(),
        notifier: recorder().notifier,
        statusFile: undefined,
      },
    );
    const err = await agent.start().then(
      () => undefined,
      (e: unknown) => e as AgentError,
    );
    t.equal(err?.code, 'AGENT_E_SIDECAR_BINARY');
    t.equal(err?.exitCode, 78, 'a configuration error: exit 78');
    t.same(events, ['preflight certs', 'preflight capture', 'preflight dns', 'preflight sidecar']);
    t.equal(agent.status().state, 'failed');
  },
);

t.test("preflights run side by side; failures are reported in the components' order", async (t) => {
  // Each of the two preflights finishes only once the other has begun: one after the other,
  // they would never finish.
  let release: { a?: () => void; b?: () => void } = {};
  const began = { a: false, b: false };
  const waiting = (me: 'a' | 'b', other: 'a' | 'b', fail?: string): Component => ({
    ...fake(me, []),
    preflight: () =>
      new Promise<void>((resolve, reject) => {
        began[me] = true;
        const done = (): void => {
          if (fail) reject(new AgentError('AGENT_E_CONFIG_VALUE', fail));
          else resolve();
        };
        release = { ...release, [me]: done };
        if (began[other]) {
          release[other]!();
          done();
        }
      }),
  });
  const { log, records } = testLogger();
  const agent = new Agent(
    config,
    [waiting('a', 'b', 'a is wrong'), waiting('b', 'a', 'b is wrong')],
    { log, clock: new FakeClock(), notifier: recorder().notifier, statusFile: undefined },
  );
  const timeout = new Promise<'hung'>((r) => {
    setTimeout(() => {
      r('hung');
    }, 5000).unref();
  });
  const outcome = await Promise.race([
    agent.start().then(
      () => 'started',
      (e: unknown) => (e as AgentError).message,
    ),
    timeout,
  ]);
  t.equal(outcome, 'a is wrong', "both ran, and the first component's failure is the one thrown");
  t.match(
    records.filter((r) => r.level === 'error').map((r) => r.failed),
    ['a', 'b'],
    "each failure logged, in the components' order",
  );
});

t.test('a failed start rolls back, not stops, the components that can', async (t) => {
  const events: string[] = [];
  const agent = new Agent(
    config,
    [
      fake('certs', events),
      fake('capture', events, { rollback: true }),
      fake('dns', events, { rollback: true }),
      fake('sidecar', events, { fail: true, rollback: true }),
    ],
    {
      log: silentLogger(),
      clock: new FakeClock(),
      notifier: recorder().notifier,
      statusFile: undefined,
    },
  );
  await t.rejects(agent.start(), { code: 'AGENT_E_IPTABLES_APPLY' });
  t.same(events.slice(events.indexOf('start sidecar') + 1), [
    'rollback sidecar',
    'rollback dns',
    'rollback capture',
    'stop certs',
  ]);
});

t.test('a stop racing a start lets it finish, then undoes it, and resolves', async (t) => {
  const events: string[] = [];
  let release!: () => void;
  const slow: Component = {
    name: 'capture',
    async start() {
      events.push('start capture');
      await new Promise<void>((r) => (release = r));
      events.push('capture on');
    },
    stop() {
      events.push('stop capture');
      return Promise.resolve();
    },
    status: () => ({ ready: true, summary: 'capture on' }),
  };
  const agent = new Agent(config, [fake('certs', events), slow, fake('dns', events)], {
    log: silentLogger(),
    clock: new FakeClock(),
    notifier: recorder().notifier,
    statusFile: undefined,
  });
  const started = agent.start();
  while (!events.includes('start capture')) await new Promise((r) => setImmediate(r));
  let stopped = false;
  const stopping = agent.stop().then(() => (stopped = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(stopped, 'the stop waits for the start under way');
  release();
  await Promise.all([started, stopping]);
  t.same(
    events.filter((e) => !e.startsWith('preflight')),
    ['start certs', 'start capture', 'capture on', 'stop capture', 'stop certs'],
    'the raced component is stopped after its start; the next one never starts',
  );
  t.equal(agent.status().state, 'stopped');
});

t.test('reload: RELOADING=1 with MONOTONIC_USEC, components reload, READY=1 again', async (t) => {
  const events: string[] = [];
  const { sent, notifier } = recorder();
  const clock = new FakeClock();
  const agent = new Agent(config, [fake('certs', events)], {
    log: silentLogger(),
    clock,
    notifier,
    statusFile: undefined,
  });
  await agent.start();
  sent.length = 0;
  await clock.advance(2500);
  await agent.reload(config);
  t.match(sent[0], ['RELOADING=1', /^MONOTONIC_USEC=\d+$/]);
  t.equal(
    sent[0]![1],
    `MONOTONIC_USEC=${FakeClock.MONOTONIC_START_US + 2_500_000n}`,
    "the injected clock's monotonic reading",
  );
  t.equal(sent[1]![0], 'READY=1');
  t.same(events, ['preflight certs', 'start certs', 'reload certs']);
  await agent.stop();
});

t.test('fatal: the agent stops and reports the error', async (t) => {
  const events: string[] = [];
  const { notifier } = recorder();
  const agent = new Agent(config, [fake('certs', events)], {
    log: silentLogger(),
    clock: new FakeClock(),
    notifier,
    statusFile: undefined,
  });
  await agent.start();
  agent.fatal(new AgentError('AGENT_E_CERT_EXPIRED', 'expired'));
  await agent.wait();
  t.equal(agent.failed?.code, 'AGENT_E_CERT_EXPIRED');
  t.equal(agent.failed?.exitCode, 1);
  t.same(events, ['preflight certs', 'start certs', 'stop certs']);
});

t.test('STATUS= follows component changes and puts problems first', async (t) => {
  const { sent, notifier } = recorder();
  const state: { problem?: string } = {};
  const c: Component = {
    name: 'certs',
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    status: () => ({
      ready: true,
      summary: 'cert valid',
      ...(state.problem ? { problem: state.problem } : {}),
    }),
  };
  const agent = new Agent(config, [c], {
    log: silentLogger(),
    clock: new FakeClock(),
    notifier,
    statusFile: undefined,
  });
  await agent.start();
  state.problem = 'CA unavailable';
  agent.refresh();
  await new Promise((r) => setImmediate(r));
  t.same(sent[sent.length - 1], ['STATUS=certs: CA unavailable; cert valid']);
  const n = sent.length;
  agent.refresh();
  t.equal(sent.length, n, 'an unchanged status is not sent again');
  await agent.stop();
});

t.test(
  'a component failing to reload: logged, the agent stays ready and keeps petting the watchdog',
  async (t) => {
    const { sent, notifier } = recorder({
      NOTIFY_SOCKET: '/run/x',
      WATCHDOG_USEC: '10000000',
      WATCHDOG_PID: String(process.pid),
    });
    const clock = new FakeClock();
    const c: Component = {
      name: 'capture',
      start: () => Promise.resolve(),
      reload: () => Promise.reject(new AgentError('AGENT_E_IPTABLES_APPLY', 'refused')),
      stop: () => Promise.resolve(),
      status: () => ({ ready: true, summary: 'capture on' }),
    };
    const agent = new Agent(config, [c], {
      log: silentLogger(),
      clock,
      notifier,
      statusFile: undefined,
    });
    await agent.start();
    await agent.reload(config);
    t.equal(agent.status().state, 'ready');
    t.same(sent[sent.length - 1], ['READY=1', 'STATUS=capture on'], 'READY=1 ends the reload');
    const before = sent.filter((f) => f[0] === 'WATCHDOG=1').length;
    await clock.advance(20_000);
    t.equal(sent.filter((f) => f[0] === 'WATCHDOG=1').length, before + 4, 'watchdog still pinged');
    await agent.stop();
  },
);

/** A component whose start waits until the test lets it finish. */
function held(name: string, events: string[], summary: string) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const c: Component = {
    name,
    async start() {
      events.push(`start ${name}`);
      await gate;
      events.push(`${name} on`);
    },
    stop: () => Promise.resolve(),
    status: () => ({ ready: true, summary }),
  };
  return {
    c,
    release: () => {
      release();
    },
  };
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
};

t.test(
  'each component starts once those it needs have: DNS beside the certificate, capture after it alone, the sidecar after all; STATUS in registry order',
  async (t) => {
    const events: string[] = [];
    const { sent, notifier } = recorder();
    const certs = held('certs', events, 'cert valid');
    const dns = held('dns', events, 'dns on');
    const capture = { ...fake('capture', events), startsAfter: ['certs'] };
    const agent = new Agent(
      config,
      [certs.c, capture, { ...dns.c, startsAfter: [] }, fake('sidecar', events)],
      { log: silentLogger(), clock: new FakeClock(), notifier, statusFile: undefined },
    );
    const started = agent.start();
    await until(() => events.includes('start dns'));
    t.same(
      events.filter((e) => !e.startsWith('preflight')),
      ['start certs', 'start dns'],
      'DNS starts while the certificate is being obtained; capture waits for it',
    );
    certs.release();
    await until(() => events.includes('start capture'));
    await new Promise((r) => setImmediate(r));
    t.same(
      events.filter((e) => !e.startsWith('preflight')),
      ['start certs', 'start dns', 'certs on', 'start capture'],
      'capture starts once the certificate is there, without waiting for DNS',
    );
    t.notOk(events.includes('start sidecar'), 'the sidecar waits for DNS too');
    t.equal(agent.summary(), 'starting; cert valid; capture on; waiting for dns');
    dns.release();
    await started;
    t.same(events.slice(-2), ['dns on', 'start sidecar'], 'the sidecar after all of them');
    t.same(sent[sent.length - 1], ['READY=1', 'STATUS=cert valid; capture on; dns on; sidecar on']);
    await agent.stop();
  },
);

t.test(
  'a failure while others start: they are told to give up, the ones after it never start, all started are rolled back in reverse order',
  async (t) => {
    const events: string[] = [];
    const certs: Component = {
      name: 'certs',
      async start(signal) {
        events.push('start certs');
        await new Promise<void>((_, reject) => {
          signal.addEventListener(
            'abort',
            () => {
              reject(signal.reason as Error);
            },
            { once: true },
          );
        });
      },
      stop() {
        events.push('stop certs');
        return Promise.resolve();
      },
      status: () => ({ ready: false, summary: 'no cert' }),
    };
    const capture = { ...fake('capture', events, { rollback: true }), startsAfter: [] };
    const dns = { ...fake('dns', events, { fail: true, rollback: true }), startsAfter: [] };
    const agent = new Agent(config, [certs, capture, dns, fake('sidecar', events)], {
      log: silentLogger(),
      clock: new FakeClock(),
      notifier: recorder().notifier,
      statusFile: undefined,
    });
    await t.rejects(agent.start(), { code: 'AGENT_E_IPTABLES_APPLY', message: /dns broke/ });
    t.same(
      events.filter((e) => !e.startsWith('preflight')),
      [
        'start certs',
        'start capture',
        'start dns',
        'rollback dns',
        'rollback capture',
        'stop certs',
      ],
    );
    t.equal(agent.status().state, 'failed');
  },
);

t.test('at debug a start says when each preflight and each start ended, in ms', async (t) => {
  const { log, records } = testLogger({ level: 'debug' });
  const clock = new FakeClock();
  const slow: Component = {
    ...fake('dns', []),
    startsAfter: [],
    async preflight() {
      await clock.advance(40);
    },
  };
  const agent = new Agent(config, [fake('certs', []), slow], {
    log,
    clock,
    notifier: recorder().notifier,
    statusFile: undefined,
  });
  await agent.start();
  t.match(
    records.filter((r) => r.preflight !== undefined).map((r) => [r.preflight, r.msg]),
    [
      ['certs', 'certs checked'],
      ['dns', 'dns checked'],
    ],
  );
  t.equal(records.find((r) => r.preflight === 'dns')?.ms, 40, 'from the start of the preflights');
  t.same(
    records.filter((r) => r.started !== undefined).map((r) => r.started),
    ['certs', 'dns'],
  );
  t.ok(
    records.filter((r) => r.started !== undefined).every((r) => typeof r.ms === 'number'),
    'with ms',
  );
  await agent.stop();
});
