import t from 'tap';
import { tmpDir } from '../helpers/tmp';
import { requireRoot } from '../helpers/root';
import { testConfig } from '../helpers/config';
import {
  createCaptureNet,
  EXCLUDED_IP,
  HOST_IP,
  SERVICE2_IP,
  SERVICE_IP,
  SERVICE_IP6,
  userWithDistinctGid,
} from '../helpers/capture-net';
import { connect, startServer, type Server } from '../helpers/tcp-probe';
import type { Exec } from '../../src/lib/exec';
import { applyPlan, cleanCapture, prepare, readLive } from '../../src/netfilter/index';

// Capture proven with real TCP: servers and clients are node processes inside two network
// namespaces joined by a veth pair (test/helpers/capture-net.ts). The proxy listens on
// ENVOY_PORT in `host`; the service addresses live on `peer`. A line starting "proxy" means the
// connection was captured; "peer"/"app…"/"ssh" means it went where it was addressed.

const APP = { uid: 4242, gid: 4242 }; // an ordinary application user (no passwd entry needed)

if (requireRoot(t, 'capture traffic tests')) {
  t.test('REDIRECT: what is captured and what is not, with real TCP', async (t) => {
    const proxyUser = userWithDistinctGid();
    if (!proxyUser) {
      t.fail('no user with uid != gid in /etc/passwd (Debian has man 6:12)');
      return;
    }
    const net = createCaptureNet('nf');
    const stateDir = tmpDir(t, 'nf-state-', { mode: 0o700 });
    const servers: Server[] = [];
    const restores: string[] = [];
    // Wraps the namespace's Exec to count restore transactions.
    const exec: Exec = (cmd, args, o) => {
      if (cmd.endsWith('-restore')) restores.push(cmd);
      return net.host.exec(cmd, args, o);
    };
    const io = { exec, stateDir };
    t.teardown(() => {
      for (const s of servers) s.stop();
      net.remove();
    });
    const h = net.host.name;
    const p = net.peer.name;
    servers.push(
      ...(await Promise.all([
        startServer(h, 'proxy', '::', 15001),
        startServer(h, 'app8080', '0.0.0.0', 8080),
        startServer(h, 'app9090', '0.0.0.0', 9090),
        startServer(h, 'app7070', '0.0.0.0', 7070),
        startServer(h, 'ssh', '0.0.0.0', 22),
        startServer(p, 'peer', '::', 80),
      ])),
    );
    const base = {
      ISTIO_SERVICE_CIDR: '10.96.0.0/16,10.100.0.0/16',
      ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.5.0/24',
      ISTIO_INBOUND_PORTS: '8080',
      ENVOY_USER: proxyUser.name,
      ISTIO_AGENT_STATE_DIR: stateDir,
    };
    const apply = async (vars: Record<string, string>) => {
      const { live, plan } = await prepare(io, testConfig(vars).capture);
      return applyPlan(io, plan, live);
    };

    t.match(
      await connect(h, SERVICE_IP, 80, APP),
      /^peer /,
      'before apply: the service address reaches the peer',
    );

    await apply(base);
    t.match(
      await connect(h, SERVICE_IP, 80, APP),
      /^proxy \S+:15001 /,
      'service CIDR 1: captured onto ENVOY_PORT',
    );
    t.match(
      await connect(h, SERVICE2_IP, 80, APP),
      /^proxy \S+:15001 /,
      'service CIDR 2: captured',
    );
    t.match(
      await connect(h, EXCLUDED_IP, 80, APP),
      /^peer 10\.96\.5\.5:80 /,
      'excluded CIDR: not captured',
    );
    t.match(
      await connect(h, '10.200.0.2', 80, APP),
      /^peer /,
      'an address outside the service CIDRs: not captured',
    );
    t.match(
      await connect(h, SERVICE_IP, 80, { uid: proxyUser.uid, gid: APP.gid }),
      /^peer /,
      "the proxy's uid: not captured",
    );
    t.match(
      await connect(h, SERVICE_IP, 80, { uid: APP.uid, gid: proxyUser.gid }),
      /^peer /,
      "the proxy's real gid: not captured",
    );
    t.match(
      await connect(h, SERVICE_IP, 80, { uid: APP.uid, gid: proxyUser.uid }),
      /^proxy /,
      "a gid equal to the proxy's uid number is captured (1.0 reused the uid as gid; we do not)",
    );
    t.match(await connect(h, SERVICE_IP, 80), /^peer /, 'root: not captured');
    t.match(
      await connect(p, HOST_IP, 8080),
      /^proxy 10\.200\.0\.1:15001 from 10\.200\.0\.2/,
      'inbound to a listed port: lands on the proxy',
    );
    t.match(
      await connect(p, HOST_IP, 9090),
      /^app9090 /,
      'inbound to an unlisted port: reaches the app',
    );
    t.match(await connect(p, HOST_IP, 22), /^ssh /, 'inbound to 22: never captured');

    restores.length = 0;
    const r = await apply({ ...base, ISTIO_INBOUND_PORTS: '*', ISTIO_LOCAL_EXCLUDE_PORTS: '9090' });
    t.same(
      restores,
      [`iptables-${r.backend}-restore`],
      'a changed config moves in one ipv4 transaction',
    );
    t.equal(r.transactions.length, 1, 'one transaction');
    t.match(await connect(p, HOST_IP, 8080), /^proxy /, 'inbound *: 8080 captured');
    t.match(await connect(p, HOST_IP, 7070), /^proxy /, 'inbound *: any port captured');
    t.match(await connect(p, HOST_IP, 9090), /^app9090 /, 'inbound *: an excluded port is not');
    t.match(await connect(p, HOST_IP, 22), /^ssh /, 'inbound *: 22 is not');

    t.match(
      await connect(h, SERVICE_IP6, 80, APP),
      /^peer /,
      'IPv6 service address: not captured while no IPv6 range is configured',
    );
    await apply({ ...base, ISTIO_SERVICE_CIDR: '10.96.0.0/16,fd00:96::/64' });
    t.match(
      await connect(h, SERVICE_IP6, 80, APP),
      /^proxy ::1:15001 /,
      'IPv6 range: captured by ip6tables onto ENVOY_PORT',
    );
    t.match(
      await connect(h, SERVICE2_IP, 80, APP),
      /^peer /,
      'the range dropped from the config is no longer captured',
    );

    await apply({ ...base, ISTIO_SERVICE_CIDR: '*' });
    t.match(
      await connect(h, '10.200.0.2', 80, APP),
      /^proxy /,
      'outbound *: every IPv4 address captured',
    );
    t.match(await connect(h, EXCLUDED_IP, 80, APP), /^peer /, 'outbound *: exclusions still apply');
    t.match(
      await connect(h, SERVICE_IP6, 80, APP),
      /^peer /,
      'outbound * is IPv4 only: IPv6 needs an explicit range',
    );

    await cleanCapture(io, await readLive(io, 'auto'));
    t.match(
      await connect(h, SERVICE_IP, 80, APP),
      /^peer /,
      'after clean: outbound goes where it was addressed',
    );
    t.match(await connect(p, HOST_IP, 8080), /^app8080 /, 'after clean: inbound reaches the app');
  });
}
