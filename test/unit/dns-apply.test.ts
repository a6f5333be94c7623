import t, { type Test } from 'tap';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Agent } from '../../src/agent';
import type { Component } from '../../src/component';
import {
  applyDns,
  cleanDns,
  createDnsComponentFor,
  createDnsFor,
  DnsComponent,
  DnsOffNotice,
  dnsSettings,
  planDns,
  probeHost,
  type DnsSettings,
} from '../../src/dns/index';
import { detectDnsmasq } from '../../src/dns/dnsmasq';
import { installedDnsmasq } from '../../src/dns/host';
import { COMPONENT_FACTORIES } from '../../src/components';
import { MANAGED_MARK } from '../../src/dns/render';
import { FakeClock } from '../../src/lib/clock';
import { AgentError } from '../../src/lib/errors';
import { exec } from '../../src/lib/exec';
import { silentLogger } from '../../src/observe/logger';
import { createNotifier } from '../../src/systemd/notify';
import { RecordingDnsmasq, put, read, snapshot, testHost } from '../helpers/dns-root';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';
import { tmpDir } from '../helpers/tmp';

const log = silentLogger();
const STATE = 'var/lib/istio/agent';
const KUBEDNS = '/etc/dnsmasq.d/kubedns';
const HAND_PLACED = 'server=/svc.cluster.local/10.55.0.10\naddress=/istio-pilot/10.55.0.7\n';

function newRoot(t: Test): string {
  // A temporary directory standing in for "/": the component reads and writes only below it.
  const root = tmpDir(t, 'dns-root-', { mode: 0o700 });
  mkdirSync(path.join(root, 'etc/dnsmasq.d'), { recursive: true });
  mkdirSync(path.join(root, STATE), { recursive: true });
  return root;
}

function settings(vars: Record<string, string>): DnsSettings {
  return dnsSettings(testConfig({ ISTIO_DNS_RESOLVER: 'none', ...vars }));
}

async function apply(root: string, s: DnsSettings, control: RecordingDnsmasq | undefined) {
  const facts = await probeHost(s, root);
  const plan = planDns(s, facts);
  const result = await applyDns(s, plan, facts, testHost(root, control), log);
  return { plan, result };
}

function fingerprint(root: string, p: string): string {
  const st = statSync(path.join(root, p));
  return `${st.ino}:${st.mtimeMs}`;
}

void t.test(
  'unchanged content: no write, no restart; changed content: write and one restart',
  async (t) => {
    const root = newRoot(t);
    const control = new RecordingDnsmasq();
    const s1 = settings({ ISTIO_PILOT_IP: '10.0.0.7' });
    const first = await apply(root, s1, control);
    t.equal(first.result.dropIn, 'create');
    t.equal(control.restarts, 1);
    t.equal(control.checks.length, 1, 'dnsmasq checked the drop-in before it was installed');
    const fp = fingerprint(root, KUBEDNS);

    const second = await apply(root, s1, control);
    t.equal(second.result.dropIn, 'unchanged');
    t.equal(second.result.restarted, undefined);
    t.equal(control.restarts, 1, 'no restart');
    t.equal(fingerprint(root, KUBEDNS), fp, 'same inode and mtime: not rewritten');

    const third = await apply(root, settings({ ISTIO_PILOT_IP: '10.0.0.8' }), control);
    t.equal(third.result.dropIn, 'update');
    t.equal(control.restarts, 2);
    t.match(read(root, KUBEDNS), /^address=\/istio-pilot\/10\.0\.0\.8$/m);
    t.notMatch(read(root, KUBEDNS), /10\.0\.0\.7/);
  },
);

void t.test(
  'a hand-placed kubedns with DNS variables set is replaced, kept, and put back by clean',
  async (t) => {
    const root = newRoot(t);
    put(root, KUBEDNS, HAND_PLACED, 0o600);
    const before = snapshot(root, [STATE]);
    const control = new RecordingDnsmasq();
    const s = settings({ ISTIO_PILOT_IP: '10.0.0.7' });
    const { plan } = await apply(root, s, control);
    t.equal(plan.dropIn, 'take-over');
    t.ok(read(root, KUBEDNS).startsWith(MANAGED_MARK));
    const state = JSON.parse(read(root, `/${STATE}/dns-state.json`));
    t.equal(
      state.changes[0].original.data,
      HAND_PLACED,
      'the hand-placed file is kept in the state directory',
    );

    // An update later keeps the hand-placed original, not the agent's first version.
    await apply(root, settings({ ISTIO_PILOT_IP: '10.0.0.9' }), control);
    const r = await cleanDns(s, testHost(root, control), log);
    t.same(r.undone, [{ path: KUBEDNS, outcome: 'restored' }]);
    t.equal(r.restarted, 'test restart');
    t.same(
      snapshot(root, [STATE]),
      before,
      'the hand-placed file is back, byte for byte and mode 0600',
    );
  },
);

void t.test(
  'a hand-placed kubedns with no DNS variables: left alone, and the log says so',
  async (t) => {
    const root = newRoot(t);
    put(root, KUBEDNS, HAND_PLACED);
    const fp = fingerprint(root, KUBEDNS);
    const deps = testDeps({ level: 'info', clock: new FakeClock() });
    const c = await createDnsComponentFor(
      testConfig({}),
      deps,
      testHost(root, new RecordingDnsmasq()),
    );
    t.equal(c, undefined, 'no component when DNS is off');
    // What the daemon builds instead: a notice that reads the drop-in directory at preflight.
    const notice = await createDnsFor(testConfig({}), deps, testHost(root, new RecordingDnsmasq()));
    t.same(deps.records, [], 'building reads nothing and logs nothing');
    await notice.preflight!(new AbortController().signal);
    await notice.start(new AbortController().signal);
    t.equal(read(root, KUBEDNS), HAND_PLACED);
    t.equal(fingerprint(root, KUBEDNS), fp);
    t.ok(
      deps.logged({ component: 'dns', level: 'info', msg: /placed by hand.*leaves it alone/ })
        .length > 0,
      'an info record names the hand-placed file',
    );

    // dns clean does not remove it either.
    const r = await cleanDns(
      dnsSettings(testConfig({})),
      testHost(root, new RecordingDnsmasq()),
      log,
    );
    t.same(r.undone, []);
    t.match(r.notes.join('\n'), 'not the agent');
    t.equal(read(root, KUBEDNS), HAND_PLACED);
  },
);

void t.test(
  "the agent's own drop-in with no DNS variables: kept, with a warning pointing at dns clean",
  async (t) => {
    const root = newRoot(t);
    await apply(root, settings({ ISTIO_PILOT_IP: '10.0.0.7' }), new RecordingDnsmasq());
    const deps = testDeps({ level: 'info', clock: new FakeClock() });
    const c = await createDnsComponentFor(
      testConfig({}),
      deps,
      testHost(root, new RecordingDnsmasq()),
    );
    t.equal(c, undefined);
    const notice = await createDnsFor(testConfig({}), deps, testHost(root, new RecordingDnsmasq()));
    t.same(deps.records, [], 'building reads nothing and logs nothing');
    await notice.preflight!(new AbortController().signal);
    await notice.start(new AbortController().signal);
    await notice.stop();
    t.ok(existsSync(path.join(root, KUBEDNS)));
    t.ok(deps.logged({ level: 'warn', msg: /dns clean/ }).length > 0);
  },
);

void t.test(
  'dnsmasq missing: AGENT_E_DNSMASQ_MISSING naming the package, nothing changed',
  async (t) => {
    const root = newRoot(t);
    put(root, '/etc/resolv.conf', 'nameserver 10.0.0.2\n');
    const before = snapshot(root);
    const s = dnsSettings(
      testConfig({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'resolv.conf' }),
    );
    await t.rejects(apply(root, s, undefined), {
      code: 'AGENT_E_DNSMASQ_MISSING',
      message: /apt-get install dnsmasq/,
    });
    t.same(snapshot(root), before, 'nothing written');
    const err = await apply(root, s, undefined).catch((e: unknown) => e as AgentError);
    t.equal((err as AgentError).exitCode, 78);
  },
);

void t.test(
  'detectDnsmasq on a root: the binary alone is not enough, unit or init script finds the restart',
  async (t) => {
    const root = newRoot(t);
    const o = { root, exec, touchHost: false };
    t.same(await detectDnsmasq(o), { installed: false, why: 'dnsmasq is not installed' });
    put(root, '/usr/sbin/dnsmasq', '#!/bin/sh\n', 0o755);
    const base = await detectDnsmasq(o);
    t.equal(base.installed, false);
    t.match(!base.installed && base.why, 'dnsmasq-base');
    t.throws(() => installedDnsmasq(base), {
      code: 'AGENT_E_DNSMASQ_MISSING',
      message:
        /^DNS is configured \(ISTIO_DNS_SERVER or ISTIO_\*_IP\) but only \S+ is installed \(dnsmasq-base\), not the dnsmasq service/,
    });
    t.throws(() => installedDnsmasq(base), { message: /^(?!.*\bbut\b.*\bbut\b)/ }, 'one "but"');
    put(root, '/etc/init.d/dnsmasq', '#!/bin/sh\n', 0o755);
    const sysv = await detectDnsmasq(o);
    t.ok(
      sysv.installed && sysv.control.how.includes('`/etc/init.d/dnsmasq restart`'),
      'SysV script when systemd is not running',
    );
    put(root, '/lib/systemd/system/dnsmasq.service', '[Service]\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    const sd = await detectDnsmasq(o);
    t.ok(
      sd.installed && sd.control.how.includes('`systemctl restart dnsmasq`'),
      'systemctl when systemd runs',
    );
  },
);

void t.test(
  'dnsmasq does not come up with the new drop-in: the previous one is put back',
  async (t) => {
    const root = newRoot(t);
    const control = new RecordingDnsmasq();
    const s1 = settings({ ISTIO_PILOT_IP: '10.0.0.7' });
    await apply(root, s1, control);
    const good = read(root, KUBEDNS);
    control.failRestarts = 1;
    const err: unknown = await apply(root, settings({ ISTIO_PILOT_IP: '10.0.0.8' }), control).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof AgentError)) throw new Error('apply did not fail with an AgentError');
    t.equal(err.code, 'AGENT_E_DNSMASQ_RESTART');
    t.equal(err.retryable, true);
    t.match(err.message, 'previous drop-in was put back');
    t.equal(read(root, KUBEDNS), good, 'the previous drop-in is back');
    t.equal(control.restarts, 3, 'first apply, the failed restart, the restart with the old file');
    // The record still undoes cleanly.
    await cleanDns(s1, testHost(root, control), log);
    t.notOk(existsSync(path.join(root, KUBEDNS)));

    // On a first install, the failed drop-in is removed again.
    const root2 = newRoot(t);
    const c2 = new RecordingDnsmasq();
    c2.failRestarts = 1;
    await t.rejects(apply(root2, s1, c2), { code: 'AGENT_E_DNSMASQ_RESTART' });
    t.notOk(existsSync(path.join(root2, KUBEDNS)));
    t.notOk(existsSync(path.join(root2, STATE, 'dns-state.json')), 'nothing left to undo');
  },
);

void t.test('dnsmasq --test refuses the drop-in: nothing is written', async (t) => {
  const root = newRoot(t);
  const control = new RecordingDnsmasq();
  control.rejectCheck = true;
  await t.rejects(apply(root, settings({ ISTIO_PILOT_IP: '10.0.0.7' }), control), {
    code: 'AGENT_E_DNSMASQ_REJECTED',
  });
  t.notOk(existsSync(path.join(root, KUBEDNS)));
  t.equal(control.restarts, 0);
});

void t.test(
  'a write that fails leaves an error naming the file',
  { skip: process.getuid?.() === 0 ? 'root ignores directory permissions' : false },
  async (t) => {
    const root = newRoot(t);
    put(root, '/etc/resolv.conf', 'nameserver 10.0.0.2\n');
    chmodSync(path.join(root, 'etc'), 0o555);
    t.teardown(() => {
      chmodSync(path.join(root, 'etc'), 0o755);
    });
    await t.rejects(
      apply(
        root,
        dnsSettings(testConfig({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'resolv.conf' })),
        new RecordingDnsmasq(),
      ),
      { code: 'AGENT_E_RESOLVER', message: /\/etc\/resolv\.conf/ },
    );
  },
);

// ---- the component ----

/** Waits (in real time, briefly) until the component has armed a timer on the fake clock. */
async function untilTimer(clock: FakeClock): Promise<void> {
  for (let i = 0; i < 400 && clock.pending === 0; i++) await new Promise((r) => setTimeout(r, 5));
  if (clock.pending === 0) throw new Error('no timer was armed');
}

void t.test(
  'component: start applies before ready, reload only on change, stop leaves DNS in place',
  async (t) => {
    const root = newRoot(t);
    put(root, '/etc/resolv.conf', 'nameserver 10.0.0.2\n');
    const control = new RecordingDnsmasq();
    const host = testHost(root, control);
    const vars = {
      ISTIO_DNS_SERVER: '10.96.0.10',
      ISTIO_PILOT_IP: '10.0.0.7',
      ISTIO_CITADEL_IP: '10.0.0.8',
      ISTIO_MIXER_IP: '10.0.0.9',
    };
    const deps = testDeps({ clock: new FakeClock() });
    const c = await createDnsComponentFor(testConfig(vars), deps, host);
    t.ok(c);
    t.equal(c!.name, 'dns');
    t.equal(c!.status().ready, false, 'not ready before start');
    await c!.start(new AbortController().signal);
    t.equal(c!.status().ready, true);
    t.equal(c!.status().summary, 'dns on (11 names)');
    t.equal(c!.status().details?.resolver, 'resolv.conf');
    t.equal(control.restarts, 1);
    t.ok(deps.changes.count >= 1, 'status change reported');
    t.match(read(root, '/etc/resolv.conf'), /^# Added by istio-node-agent/);

    await c!.reload(testConfig(vars));
    t.equal(control.restarts, 1, 'reload with the same configuration: no restart');
    await c!.reload(testConfig({ ...vars, ISTIO_PILOT_IP: '10.0.0.70' }));
    t.equal(control.restarts, 2, 'reload with a new address: one restart');
    t.match(read(root, KUBEDNS), /address=\/istio-pilot\/10\.0\.0\.70/);
    await c!.reload(testConfig({ ISTIO_MIXER_IP: '10.0.0.9' }));
    t.equal(c!.status().summary, 'dns on (4 names)');

    await c!.reload(testConfig({}));
    t.ok(
      existsSync(path.join(root, KUBEDNS)),
      'DNS variables removed on reload: the drop-in stays (dns clean removes it)',
    );

    await c!.stop();
    t.ok(existsSync(path.join(root, KUBEDNS)), 'stop leaves the drop-in');
    t.match(
      read(root, '/etc/resolv.conf'),
      /^# Added by istio-node-agent/,
      'stop leaves the resolver change',
    );
  },
);

void t.test(
  'component: start retries a failed dnsmasq restart with backoff, then gives up',
  async (t) => {
    const root = newRoot(t);
    const control = new RecordingDnsmasq();
    control.failRestarts = 2; // the failed restart and the restart after putting the old file back
    const clock = new FakeClock();
    const c = await createDnsComponentFor(
      testConfig({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'none' }),
      testDeps({ clock }),
      testHost(root, control),
    );
    let done = false;
    const started = c!.start(new AbortController().signal).then(() => (done = true));
    await untilTimer(clock);
    t.equal(done, false, 'waiting before the retry');
    t.equal(
      clock.nextAt()! - clock.now(),
      1000,
      'first retry after 1 s (no jitter with random 0.5)',
    );
    t.notOk(existsSync(path.join(root, KUBEDNS)), 'the failed drop-in was removed again');
    await clock.advance(1000);
    await started;
    t.equal(done, true);
    t.ok(existsSync(path.join(root, KUBEDNS)));
    t.equal(c!.status().ready, true);

    const root2 = newRoot(t);
    const always = new RecordingDnsmasq();
    always.failRestarts = 1000;
    const clock2 = new FakeClock();
    const c2 = await createDnsComponentFor(
      testConfig({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'none' }),
      testDeps({ clock: clock2 }),
      testHost(root2, always),
    );
    const p = c2!.start(new AbortController().signal);
    const outcome = p.then(
      () => 'resolved',
      (e: unknown) => (e as AgentError).code,
    );
    for (let i = 0; i < 2; i++) {
      await untilTimer(clock2);
      await clock2.advance(clock2.nextAt()! - clock2.now());
    }
    t.equal(await outcome, 'AGENT_E_DNSMASQ_RESTART', 'after 3 attempts start fails');

    const root3 = newRoot(t);
    const c3 = await createDnsComponentFor(
      testConfig({ ISTIO_PILOT_IP: '10.0.0.7' }),
      testDeps({ clock: new FakeClock() }),
      testHost(root3, undefined),
    );
    await t.rejects(
      c3!.start(new AbortController().signal),
      { code: 'AGENT_E_DNSMASQ_MISSING' },
      'a permanent error is not retried',
    );
  },
);

void t.test('the dns factory is registered and is off without DNS variables', async (t) => {
  const entry = COMPONENT_FACTORIES.find((f) => f.name === 'dns');
  if (!entry) throw new Error('dns is not registered in src/components.ts');
  const factory = await entry.load();
  // Off: no DNS component, only the notice that looks (read-only, at preflight) for a kubedns in
  // the drop-in directory, and is not part of STATUS.
  const off = await factory(
    testConfig({ ISTIO_DNSMASQ_DIR: '/nonexistent-dns-test-dir' }),
    testDeps({ clock: new FakeClock() }),
  );
  t.notOk(off instanceof DnsComponent, 'no DNS component when DNS is off');
  t.ok(off instanceof DnsOffNotice);
  t.equal(off?.inStatus, false, 'off: not part of STATUS');
  const on = await factory(
    testConfig({ ISTIO_PILOT_IP: '10.0.0.7' }),
    testDeps({ clock: new FakeClock() }),
  );
  t.equal(on?.name, 'dns', 'on with an address set (not started here: it would change this host)');
  t.ok(on instanceof DnsComponent);
});

void t.test('DNS off: STATUS and the status file are as without a DNS component', async (t) => {
  const root = newRoot(t);
  put(root, KUBEDNS, HAND_PLACED);
  const run = async (withNotice: boolean) => {
    const deps = testDeps({ level: 'info', clock: new FakeClock() });
    const sent: string[][] = [];
    const notifier = createNotifier({ NOTIFY_SOCKET: '/run/x' }, silentLogger(), (fields) => {
      sent.push([...fields]);
      return Promise.resolve();
    });
    const notice = await createDnsFor(testConfig({}), deps, testHost(root, new RecordingDnsmasq()));
    // Where the registry puts DNS: after certificates and capture, before the sidecar.
    const others = ['certs', 'capture', 'sidecar'].map((name): Component => {
      let on = false;
      return {
        name,
        start: () => Promise.resolve(void (on = true)),
        stop: () => Promise.resolve(void (on = false)),
        status: () => ({ ready: on, summary: `${name} ${on ? 'on' : 'off'}` }),
      };
    });
    const components = withNotice ? [...others.slice(0, 2), notice, others[2]!] : others;
    const agent = new Agent(testConfig({}), components, {
      log: silentLogger(),
      clock: new FakeClock(),
      notifier,
      statusFile: undefined,
    });
    await agent.start();
    const status = agent.status();
    await agent.stop();
    return {
      sent,
      summary: status.summary,
      components: status.components,
      records: deps.records,
    };
  };
  const without = await run(false);
  const withNotice = await run(true);
  t.same(withNotice.sent, without.sent, 'the same notifications (STATUS=, READY=1)');
  t.equal(withNotice.summary, without.summary);
  t.same(withNotice.components, without.components, 'no dns entry in the status file');
  t.ok(
    withNotice.records.some((r) => /placed by hand/.test(r.msg)),
    'the notice logged the hand-placed drop-in',
  );
});

void t.test('ISTIO_DNSMASQ_DIR changed: the drop-in moves, the old one is removed', async (t) => {
  const root = newRoot(t);
  mkdirSync(path.join(root, 'etc/dnsmasq.alt'), { recursive: true });
  const control = new RecordingDnsmasq();
  await apply(root, settings({ ISTIO_PILOT_IP: '10.0.0.7' }), control);
  const moved = settings({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNSMASQ_DIR: '/etc/dnsmasq.alt' });
  const { plan, result } = await apply(root, moved, control);
  t.same(
    plan.undo.map((u) => u.path),
    [KUBEDNS],
  );
  t.same(result.undone, [{ path: KUBEDNS, outcome: 'removed' }]);
  t.notOk(existsSync(path.join(root, KUBEDNS)));
  t.ok(existsSync(path.join(root, 'etc/dnsmasq.alt/kubedns')));
  t.equal(control.restarts, 2);
  await cleanDns(moved, testHost(root, control), log);
  t.notOk(existsSync(path.join(root, 'etc/dnsmasq.alt/kubedns')));
  t.notOk(existsSync(path.join(root, STATE, 'dns-state.json')));
});
