import t from 'tap';
import { tmpDir } from '../helpers/tmp';
import { requireRoot } from '../helpers/root';
import { testConfig } from '../helpers/config';
import { createCaptureNet, HOST_IP, saveAll } from '../helpers/capture-net';
import { connect, startServer, type Server } from '../helpers/tcp-probe';
import { applyPlan, cleanCapture, diffLive, prepare, readLive } from '../../src/netfilter/index';

// TPROXY: the proxy must see the connection's original destination. A TPROXY listener needs
// IP_TRANSPARENT, which Node cannot set, so the "proxy" here is a small python3 socket server
// (test/helpers/tcp-probe.ts) that sets IP_TRANSPARENT (19) / IPV6_TRANSPARENT (75) and answers
// with the local address of each accepted connection: for TPROXY that is the address the client
// dialled, not the proxy port.

if (requireRoot(t, 'TPROXY capture tests')) {
  t.test(
    'TPROXY: inbound connections reach the proxy with their original destination',
    async (t) => {
      const net = createCaptureNet('nf');
      const stateDir = tmpDir(t, 'nf-state-', { mode: 0o700 });
      const servers: Server[] = [];
      t.teardown(() => {
        for (const s of servers) s.stop();
        net.remove();
      });
      const h = net.host.name;
      const p = net.peer.name;
      servers.push(
        ...(await Promise.all([
          startServer(h, 'tproxy', '0.0.0.0', 15001, { transparent: true }),
          startServer(h, 'tproxy6', '::', 15001, { transparent: true }),
          startServer(h, 'app8080', '::', 8080),
          startServer(h, 'app9090', '::', 9090),
        ])),
      );
      const io = { exec: net.host.exec, stateDir };
      const ipState = (): string =>
        net.host.runSync('ip', ['-4', 'rule']) +
        net.host.runSync('ip', ['-6', 'rule']) +
        saveAll(net.host);
      const before = ipState();
      const cfg = testConfig({
        ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
        ISTIO_INBOUND_PORTS: '8080',
        ENABLE_INBOUND_IPV6: 'true',
        ENVOY_USER: 'nobody',
        ISTIO_AGENT_STATE_DIR: stateDir,
      });
      const { live, plan } = await prepare(io, cfg.capture);
      t.same(
        plan.routing.map((r) => r.family),
        [4, 6],
        'policy routing planned for both families',
      );
      await applyPlan(io, plan, live);

      t.match(net.host.runSync('ip', ['-4', 'rule']), /fwmark 0x539 lookup 133/, 'ip rule added');
      t.match(
        net.host.runSync('ip', ['-4', 'route', 'show', 'table', '133']),
        /local default dev lo/,
        'local route added',
      );
      const inbound = net.host
        .runSync('iptables-save', ['-t', 'mangle'])
        .split('\n')
        .filter((l) => l.startsWith('-A ISTIO_INBOUND'));
      t.same(
        inbound,
        [
          '-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -m socket -j ISTIO_DIVERT',
          '-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j ISTIO_TPROXY',
        ],
        'one socket rule per port (1.0 appended it twice)',
      );

      t.match(
        await connect(p, HOST_IP, 8080),
        /^tproxy 10\.200\.0\.1:8080 from 10\.200\.0\.2$/,
        'IPv4: the proxy sees the original destination 10.200.0.1:8080',
      );
      t.match(
        await connect(p, 'fd00:200::1', 8080),
        /^tproxy6 fd00:200::1:8080 from fd00:200::2$/,
        'IPv6: the proxy sees [fd00:200::1]:8080',
      );
      t.match(await connect(p, HOST_IP, 9090), /^app9090 /, 'an unlisted port reaches the app');
      t.same(await diffLive(io, plan, await readLive(io, 'auto')), [], 'diff: in sync');

      net.host.runSync('ip', ['-4', 'rule', 'del', 'fwmark', '1337', 'lookup', '133']);
      const drift = await diffLive(io, plan, await readLive(io, 'auto'));
      t.match(
        drift,
        [{ family: 4, table: 'routing', kind: 'routing-missing', chain: 'rule' }],
        'diff notices the missing ip rule',
      );
      await applyPlan(io, plan, await readLive(io, 'auto'));
      t.match(
        await connect(p, HOST_IP, 8080),
        /^tproxy 10\.200\.0\.1:8080 /,
        're-apply restores it',
      );

      await cleanCapture(io, await readLive(io, 'auto'));
      t.equal(
        ipState(),
        before,
        'clean removes the chains, the ip rules and the routes: rules and iptables-save as before',
      );
      t.equal(
        net.host.runSync('ip', ['-4', 'route', 'show', 'table', 'all']).includes('table 133'),
        false,
        'no route left in table 133',
      );
      t.match(await connect(p, HOST_IP, 8080), /^app8080 /, 'after clean: inbound reaches the app');
    },
  );
}
