// Issue 9, item 5: everything is checked before the first host change, and a failed start undoes
// every host change made so far, DNS included. The real components: certificates against the
// embedded CA on loopback, capture in a network namespace, DNS on a temporary root (with a
// recording dnsmasq control), the sidecar as `run` builds it.
import t from 'tap';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { Agent } from '../../src/agent';
import { startDevCa } from '../../src/ca/index';
import { createCertComponent } from '../../src/certs/index';
import type { Component } from '../../src/component';
import { createDnsComponentFor } from '../../src/dns/index';
import { FakeClock } from '../../src/lib/clock';
import { AgentError } from '../../src/lib/errors';
import { createCaptureComponent } from '../../src/netfilter/index';
import { normaliseSave } from '../../src/netfilter/live';
import { silentLogger } from '../../src/observe/logger';
import { createSidecarComponent } from '../../src/sidecar/index';
import { createNotifier } from '../../src/systemd/notify';
import { bootstrapDir } from '../helpers/certs';
import { RecordingDnsmasq, put, snapshot, testHost } from '../helpers/dns-root';
import { createNetns, type Netns } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';
import { testConfig } from '../helpers/config';
import { testDeps } from '../helpers/deps';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const RESOLV = 'nameserver 10.0.0.2\n';

function save(ns: Netns): string {
  return normaliseSave(ns.runSync('iptables-save', []) + ns.runSync('ip6tables-save', []));
}

if (requireRoot(t, 'the start-undo tests')) {
  t.test('setup', async (t) => {
    const ca = await startDevCa({ ttlMs: 3600_000 });
    const boot = await ca.issueBootstrap(ID, 3600_000);
    const work = tmpDir(t, 'start-undo-', { mode: 0o700 });
    const ns = createNetns('undo');
    t.teardown(async () => {
      ns.remove();
      await ca.stop();
    });
    ns.runSync('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', '192.0.2.1', '-j', 'RETURN']);

    /** One host: a fresh CERTS_DIR, DNS root and state dir; the components `run` would build. */
    async function host(name: string, vars: Record<string, string>, extra: Component[] = []) {
      const base = path.join(work, name);
      mkdirSync(base);
      const certsDir = bootstrapDir(t, boot);
      const root = path.join(base, 'root');
      put(root, '/etc/resolv.conf', RESOLV);
      const stateDir = path.join(base, 'state');
      const emptyBin = path.join(base, 'bin');
      mkdirSync(emptyBin);
      const config = testConfig({
        CITADEL_ADDRESS: ca.address,
        CERTS_DIR: certsDir,
        WORKLOAD_KEY_ALGORITHM: 'ECDSA',
        ISTIO_AGENT_STATE_DIR: stateDir,
        ISTIO_SERVICE_CIDR: '10.96.0.0/16',
        ISTIO_INBOUND_PORTS: '8080',
        ENVOY_USER: 'nobody',
        EXEC_USER: 'nobody',
        ISTIO_DNS_SERVER: '10.96.0.10',
        ISTIO_PILOT_IP: '10.96.0.20',
        ISTIO_DNS_RESOLVER: 'resolv.conf',
        ISTIO_BIN_BASE: emptyBin,
        ...vars,
      });
      const deps = testDeps({ random: Math.random, exec: ns.exec });
      const dnsmasq = new RecordingDnsmasq();
      const built = [
        await createCertComponent(config, deps),
        await createCaptureComponent(config, deps),
        await createDnsComponentFor(config, deps, testHost(root, dnsmasq)),
        await createSidecarComponent(config, deps),
      ].filter((c): c is Component => c !== undefined);
      const agent = new Agent(config, [...built, ...extra], {
        log: silentLogger(),
        clock: new FakeClock(),
        notifier: createNotifier({}, silentLogger()),
        statusFile: undefined,
      });
      return { agent, certsDir, root, stateDir, dnsmasq };
    }

    await t.test(
      "the issue's example: DNS on, SIDECAR_MODE=envoy without envoy: exit 78, nothing changed",
      async (t) => {
        const calls = ca.calls.length;
        const iptablesBefore = save(ns);
        const h = await host('no-envoy', { SIDECAR_MODE: 'envoy' });
        const certsBefore = snapshot(path.dirname(h.certsDir));
        const rootBefore = snapshot(h.root);
        const err = await h.agent.start().then(
          () => undefined,
          (e: unknown) => e as AgentError,
        );
        t.ok(err instanceof AgentError, 'start fails');
        t.equal(err?.code, 'AGENT_E_SIDECAR_BINARY');
        t.equal(err?.exitCode, 78, 'exit 78');
        t.equal(ca.calls.length, calls, 'no CSR was sent');
        t.same(snapshot(path.dirname(h.certsDir)), certsBefore, 'CERTS_DIR untouched');
        t.equal(save(ns), iptablesBefore, 'no capture rule was ever applied');
        t.same(snapshot(h.root), rootBefore, 'no drop-in, resolv.conf unchanged');
        t.equal(h.dnsmasq.restarts + h.dnsmasq.tryRestarts, 0, 'dnsmasq never restarted');
        t.notOk(existsSync(h.stateDir), 'no state written');
      },
    );

    await t.test(
      'a start that fails after capture and DNS are up undoes both (also with KEEP_ON_STOP)',
      async (t) => {
        const iptablesBefore = save(ns);
        const broken: Component = {
          name: 'sidecar',
          start: () =>
            Promise.reject(new AgentError('AGENT_E_SIDECAR_BOOTSTRAP', 'cannot write (test)')),
          stop: () => Promise.resolve(),
          status: () => ({ ready: false, summary: 'sidecar down' }),
        };
        const h = await host(
          'late-failure',
          { SIDECAR_MODE: 'none', ISTIO_CAPTURE_KEEP_ON_STOP: 'true' },
          [broken],
        );
        // A hand-placed drop-in (1.0's setupIstioVM.sh): replaced by the start, so it must come back.
        put(h.root, '/etc/dnsmasq.d/kubedns', 'server=/svc.cluster.local/10.1.1.1\n');
        // The agent's state directory (under the root for DNS) keeps only its lock file.
        const stateInRoot = path.relative('/', h.stateDir).split('/')[0]!;
        const rootBefore = snapshot(h.root, [stateInRoot]);
        await t.rejects(h.agent.start(), { code: 'AGENT_E_SIDECAR_BOOTSTRAP' });
        t.equal(h.dnsmasq.restarts, 1, 'the start did restart dnsmasq with its drop-in');
        t.equal(h.dnsmasq.tryRestarts, 1, 'and restarted it again after putting the old one back');
        t.same(snapshot(h.root, [stateInRoot]), rootBefore, 'drop-in and resolv.conf as before');
        t.notOk(
          existsSync(path.join(h.root, h.stateDir, 'dns-state.json')),
          'no DNS change record left',
        );
        t.equal(save(ns), iptablesBefore, 'capture rules removed, although KEEP_ON_STOP=true');
      },
    );
  });
}
