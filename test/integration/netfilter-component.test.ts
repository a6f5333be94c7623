import t from 'tap';
import { requireRoot } from '../helpers/root';
import { testConfig } from '../helpers/config';
import { testDeps, type TestDeps } from '../helpers/deps';
import { createNetns, type Netns } from '../helpers/netns';
import { tmpDir, type Teardown } from '../helpers/tmp';
import { FakeClock } from '../../src/lib/clock';
import type { Exec } from '../../src/lib/exec';
import { normaliseSave } from '../../src/netfilter/live';
import { createCaptureComponent } from '../../src/netfilter/index';

// The capture component in the daemon's shape, against real iptables in a namespace, with a
// FakeClock driving the periodic drift check.

function save(ns: Netns): string {
  return normaliseSave(ns.runSync('iptables-save', []) + ns.runSync('ip6tables-save', []));
}

interface Harness {
  readonly deps: TestDeps;
  readonly clock: FakeClock;
  readonly restores: string[];
  /** Resolves at the next deps.changed() call. */
  nextChange(): Promise<void>;
}

function harness(ns: Netns): Harness {
  const clock = new FakeClock();
  const restores: string[] = [];
  let waiter: (() => void) | undefined;
  const exec: Exec = (cmd, args, o) => {
    if (cmd.endsWith('-restore')) restores.push(cmd);
    return ns.exec(cmd, args, o);
  };
  const deps = testDeps({
    clock,
    exec,
    throwOnFatal: true,
    onChange: () => {
      const w = waiter;
      waiter = undefined;
      w?.();
    },
  });
  return {
    deps,
    clock,
    restores,
    nextChange: () =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error('no change reported within 30 s'));
        }, 30_000);
        waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

/** A fresh namespace (removed at the end of `t`), its harness, and a config's base variables. */
function setup(t: Teardown): { ns: Netns; h: Harness; vars: Record<string, string> } {
  const ns = createNetns('nf');
  const stateDir = tmpDir(t, 'nf-state-', { mode: 0o700 });
  t.teardown(() => {
    ns.remove();
  });
  const vars = {
    ISTIO_SERVICE_CIDR: '10.96.0.0/16',
    ENVOY_USER: 'nobody',
    ISTIO_AGENT_STATE_DIR: stateDir,
  };
  return { ns, h: harness(ns), vars };
}

if (requireRoot(t, 'capture component tests')) {
  t.test(
    'the component applies on start, repairs drift on its check, reloads, and cleans on stop',
    async (t) => {
      const { ns, h, vars: base } = setup(t);
      const vars = { ...base, ISTIO_INBOUND_PORTS: '8080', ISTIO_CAPTURE_CHECK_INTERVAL: '10s' };
      ns.runSync('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', '192.0.2.1', '-j', 'RETURN']);
      const before = save(ns);

      t.equal(
        await createCaptureComponent(testConfig({ ...vars, ISTIO_CAPTURE: 'false' }), h.deps),
        undefined,
        'ISTIO_CAPTURE=false: no component',
      );
      const c = await createCaptureComponent(testConfig(vars), h.deps);
      if (!c) throw new Error('no component');
      t.match(c.status(), { ready: false, summary: 'capture off' }, 'before start: off');
      await c.start(new AbortController().signal);
      const applied = save(ns);
      t.match(
        applied,
        /-A ISTIO_OUTPUT -d 10\.96\.0\.0\/16 -j ISTIO_REDIRECT/,
        'start applied the plan',
      );
      t.match(c.status(), { ready: true, summary: 'capture on (13 rules)' });
      t.equal(h.clock.pending, 1, 'the drift check is scheduled');

      h.restores.length = 0;
      await h.clock.advance(10_000);
      // The check runs real iptables-save; wait (real time) until it has finished and re-armed.
      for (let i = 0; i < 600 && !(c.status().details?.lastCheck && h.clock.pending === 1); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      t.ok(c.status().details?.lastCheck, 'the check ran');
      t.same(h.restores, [], 'a check that finds the rules in sync changes nothing');
      t.equal(h.clock.pending, 1, 'and schedules the next check');

      ns.runSync('iptables', [
        '-t',
        'nat',
        '-D',
        'ISTIO_OUTPUT',
        '-d',
        '10.96.0.0/16',
        '-j',
        'ISTIO_REDIRECT',
      ]);
      ns.runSync('iptables', ['-t', 'nat', '-D', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND']);
      t.not(save(ns), applied, 'rules deleted by hand');
      const repaired = h.nextChange();
      await h.clock.advance(10_000);
      await repaired;
      t.equal(
        save(ns),
        applied,
        'the check repaired the drift: the ruleset is the applied one again',
      );
      const warn = h.deps.logged({ level: 'warn', msg: /drifted/ })[0];
      t.ok(warn, 'with a warning log');
      t.equal(warn?.component, 'capture', 'from the capture component');
      t.match(
        warn?.drift,
        ['ipv4 nat chain-differs ISTIO_OUTPUT', 'ipv4 nat jump-missing PREROUTING'],
        'naming what drifted',
      );
      t.match(c.status(), { ready: true, details: { repairs: 1 } });

      h.restores.length = 0;
      await c.reload!(testConfig(vars));
      t.same(h.restores, [], 'reload with the same config: nothing applied');
      const reloaded = h.nextChange();
      await c.reload!(testConfig({ ...vars, ISTIO_SERVICE_CIDR: '10.96.0.0/16,10.100.0.0/16' }));
      await reloaded;
      t.match(
        h.restores,
        [/^iptables-(nft|legacy)-restore$/],
        'reload with a changed config: one transaction',
      );
      t.equal(h.restores.length, 1);
      t.match(save(ns), /-A ISTIO_OUTPUT -d 10\.100\.0\.0\/16 -j ISTIO_REDIRECT/);
      t.match(c.status(), { summary: 'capture on (14 rules)' });

      await c.stop();
      t.equal(save(ns), before, 'stop cleaned: iptables-save as before start');
      t.match(c.status(), { summary: 'capture off' });
      t.equal(h.clock.pending, 0, 'no check left scheduled');
    },
  );

  t.test(
    'ISTIO_CAPTURE_KEEP_ON_STOP keeps the rules (fail closed); a reload to ISTIO_CAPTURE=false removes them',
    async (t) => {
      const { ns, h, vars } = setup(t);
      const before = save(ns);
      const keep = await createCaptureComponent(
        testConfig({ ...vars, ISTIO_CAPTURE_KEEP_ON_STOP: 'true' }),
        h.deps,
      );
      await keep!.start(new AbortController().signal);
      const applied = save(ns);
      await keep!.stop();
      t.equal(save(ns), applied, 'rules kept after stop');
      t.ok(h.deps.logged({ msg: /keeping the capture rules/ }).length > 0, 'and it says so');

      const c = await createCaptureComponent(testConfig(vars), h.deps);
      await c!.start(new AbortController().signal);
      t.equal(save(ns), applied, 'a new start adopts the kept rules');
      await c!.reload!(testConfig({ ...vars, ISTIO_CAPTURE: 'false' }));
      t.equal(save(ns), before, 'reload to ISTIO_CAPTURE=false removed them');
      t.match(c!.status(), { ready: true, summary: 'capture off' });
      await c!.stop();
    },
  );

  t.test(
    'start reads only iptables when no IPv6 rule of ours can be there; once the agent is READY, IPv6 leftovers without a record are removed',
    async (t) => {
      const { ns, h, vars } = setup(t);
      // An earlier configuration's IPv6 capture, its state record lost (a fresh state directory).
      ns.runSync('ip6tables', ['-t', 'nat', '-N', 'ISTIO_OUTPUT']);
      ns.runSync('ip6tables', ['-t', 'nat', '-A', 'ISTIO_OUTPUT', '-j', 'RETURN']);
      ns.runSync('ip6tables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT']);
      t.match(ns.runSync('ip6tables-save', []), /ISTIO_OUTPUT/, 'leftover IPv6 rules');

      const c = await createCaptureComponent(testConfig(vars), h.deps);
      const removed = h.nextChange();
      await c!.start(new AbortController().signal);
      t.match(
        h.deps.logged({ msg: /^capture on/ })[0],
        { families: [4] },
        'start planned and applied IPv4 only: ip6tables was not read on the way to READY',
      );
      t.match(c!.status(), { ready: true });
      await new Promise((r) => setTimeout(r, 200));
      t.match(ns.runSync('ip6tables-save', []), /ISTIO_OUTPUT/, 'left alone until READY');
      h.deps.events.emit('agent-ready');
      await removed;
      t.notMatch(ns.runSync('ip6tables-save', []), /ISTIO/, 'the IPv6 leftovers are gone');
      t.match(
        ns.runSync('iptables-save', []),
        /-A ISTIO_OUTPUT -d 10\.96\.0\.0\/16/,
        'IPv4 capture on',
      );
      t.match(
        h.deps.logged({ level: 'warn', msg: /left in ip6tables/ })[0],
        { component: 'capture', families: [4, 6] },
        'with a warning',
      );
      t.match(c!.status(), { ready: true, details: { families: [4, 6] } }, 'IPv6 now checked too');

      // The drift check covers IPv6 from then on: new leftovers are found and removed.
      ns.runSync('ip6tables', ['-t', 'nat', '-N', 'ISTIO_OUTPUT']);
      const repaired = h.nextChange();
      await h.clock.advance(60_000);
      await repaired;
      t.notMatch(ns.runSync('ip6tables-save', []), /ISTIO/, 'the drift check removed them');
      await c!.stop();
      t.notMatch(ns.runSync('iptables-save', []), /ISTIO/, 'stop cleaned IPv4');
    },
  );
}
