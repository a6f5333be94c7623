import t from 'tap';
import { execFileSync } from 'node:child_process';
import { requireRoot } from '../helpers/root';
import { testConfig } from '../helpers/config';
import { createNetns, type Netns } from '../helpers/netns';
import { tmpDir } from '../helpers/tmp';
import { createCaptureNet, HOST_IP } from '../helpers/capture-net';
import { connect, startServer, type Server } from '../helpers/tcp-probe';
import type { Exec } from '../../src/lib/exec';
import { applyPlan, cleanCapture, prepare, readLive } from '../../src/netfilter/index';
import { normaliseSave, parseSave } from '../../src/netfilter/live';
import { OUR_CHAINS } from '../../src/netfilter/plan';

// Apply and clean against real iptables, with both backends: host rules survive byte for byte,
// apply is idempotent, a config change is one transaction, and clean gives back the exact
// iptables-save output of before (counters aside).

type Backend = 'nft' | 'legacy';

/** Rules the "host" had before the agent came: in every table and chain we touch, and IPv6 INPUT. */
const HOST_RULES_V4 = `*nat
:HOST_NAT - [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353
-A OUTPUT -d 192.0.2.1/32 -p tcp -j RETURN
-A POSTROUTING -o lo -j HOST_NAT
-A HOST_NAT -j RETURN
COMMIT
*mangle
-A PREROUTING -p tcp -m tcp --dport 443 -j MARK --set-xmark 0x7/0xffffffff
COMMIT
*filter
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
`;
const HOST_RULES_V6 = `*filter
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
COMMIT
`;

function save(ns: Netns, be: Backend): string {
  return normaliseSave(
    ns.runSync(`iptables-${be}-save`, []) + '\n' + ns.runSync(`ip6tables-${be}-save`, []),
  );
}

/** The save text with every trace of ours removed (our chains, their rules, jumps into them). */
function withoutOurs(text: string): string {
  return text
    .split('\n')
    .filter((l) => {
      const m = /^(?::|-A )(\S+)/.exec(l);
      if (m && OUR_CHAINS.has(m[1]!)) return false;
      const j = /\s-j (\S+)/.exec(l);
      return !(l.startsWith('-A ') && j && OUR_CHAINS.has(j[1]!));
    })
    .join('\n');
}

/** Drops table sections that hold no rules, no user chains and only ACCEPT policies. */
function dropEmptyTables(text: string): string {
  const out: string[] = [];
  let section: string[] = [];
  for (const l of text.split('\n').filter((x) => x !== '')) {
    section.push(l);
    if (l !== 'COMMIT') continue;
    const empty = section.every(
      (x) => x.startsWith('*') || x === 'COMMIT' || /^:\S+ ACCEPT /.test(x),
    );
    if (!empty) out.push(...section);
    section = [];
  }
  return [...out, ...section].join('\n');
}

function restoreHost(ns: Netns, be: Backend): void {
  execFileSync('ip', ['netns', 'exec', ns.name, `iptables-${be}-restore`, '--noflush'], {
    input: HOST_RULES_V4,
  });
  execFileSync('ip', ['netns', 'exec', ns.name, `ip6tables-${be}-restore`, '--noflush'], {
    input: HOST_RULES_V6,
  });
}

if (requireRoot(t, 'iptables apply/clean tests')) {
  for (const be of ['nft', 'legacy'] as const) {
    t.test(
      `${be}: host rules survive apply and clean; apply is idempotent; clean restores iptables-save`,
      async (t) => {
        const ns = createNetns('nf');
        const stateDir = tmpDir(t, 'nf-state-', { mode: 0o700 });
        t.teardown(() => {
          ns.remove();
        });
        const restores: string[] = [];
        const exec: Exec = (cmd, args, o) => {
          if (cmd.endsWith('-restore')) restores.push(cmd);
          return ns.exec(cmd, args, o);
        };
        const io = { exec, stateDir };
        restoreHost(ns, be);
        const before = save(ns, be);
        const before4 = ns.runSync(`iptables-${be}-save`, []);
        t.match(before, /-A OUTPUT -d 192\.0\.2\.1\/32 -p tcp -j RETURN/, 'host rules in place');
        const vars = {
          ISTIO_IPTABLES_BACKEND: be,
          ISTIO_SERVICE_CIDR: '10.96.0.0/16,10.100.0.0/16,fd00:96::/64',
          ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.5.0/24',
          ISTIO_INBOUND_PORTS: '8080,9090',
          ENVOY_USER: 'nobody',
          ISTIO_AGENT_STATE_DIR: stateDir,
        };
        const apply = async (v: Record<string, string>) => {
          const { live, plan } = await prepare(io, testConfig(v).capture);
          t.equal(live.backend, be, `programs the ${be} backend`);
          return applyPlan(io, plan, live);
        };

        await apply(vars);
        const applied = save(ns, be);
        t.not(applied, before, 'rules were added');
        t.match(applied, /-A ISTIO_OUTPUT -d 10\.96\.0\.0\/16 -j ISTIO_REDIRECT/);
        t.match(
          applied,
          /-A ISTIO_OUTPUT -d fd00:96::\/64 -j ISTIO_REDIRECT/,
          'the IPv6 range went to ip6tables',
        );
        t.equal(
          dropEmptyTables(withoutOurs(applied)),
          dropEmptyTables(before),
          'every host rule is still there, unchanged and in order',
        );
        t.match(
          applied,
          /\*filter\n(:.*\n)*-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p ipv6-icmp -j ACCEPT\n/,
          'ip6tables INPUT untouched (1.0 flushed it)',
        );

        restores.length = 0;
        const again = await apply(vars);
        t.equal(again.changed, false, 'apply twice: nothing to do');
        t.same(restores, [], 'no iptables-restore ran');
        t.equal(save(ns, be), applied, 'apply twice = same ruleset');

        restores.length = 0;
        const moved = await apply({
          ...vars,
          ISTIO_SERVICE_CIDR: '10.96.0.0/16,fd00:96::/64',
          ISTIO_INBOUND_PORTS: '8080',
        });
        t.same(
          restores,
          [`iptables-${be}-restore`],
          'a changed config (IPv4 only) moves in one transaction',
        );
        t.equal(moved.transactions.length, 1);
        const changed = save(ns, be);
        t.notMatch(changed, /10\.100\.0\.0\/16/, 'the dropped CIDR is gone');
        t.notMatch(changed, /--dport 9090/, 'the dropped port is gone');
        t.equal(withoutOurs(changed), withoutOurs(applied), 'host rules unchanged by the move');

        ns.runSync(`iptables-${be}`, [
          '-t',
          'nat',
          '-A',
          'OUTPUT',
          '-p',
          'tcp',
          '-j',
          'ISTIO_OUTPUT',
        ]);
        const dup = await apply(vars);
        t.ok(dup.changed, 'a duplicated jump is repaired');
        const v4 = ns.runSync(`iptables-${be}-save`, ['-t', 'nat']);
        t.equal(
          (v4.match(/-A OUTPUT -p tcp -j ISTIO_OUTPUT/g) ?? []).length,
          1,
          'exactly one jump into ISTIO_OUTPUT',
        );

        await cleanCapture(io, await readLive(io, be));
        if (be === 'nft') {
          t.equal(
            save(ns, be),
            before,
            'clean: iptables-save and ip6tables-save exactly as before',
          );
        } else {
          t.equal(
            normaliseSave(ns.runSync('iptables-legacy-save', [])),
            normaliseSave(before4),
            'clean: iptables-save exactly as before',
          );
          // The host had no IPv6 nat table; legacy cannot unload the one we instantiated.
          t.equal(
            dropEmptyTables(save(ns, be)),
            dropEmptyTables(before),
            'ip6tables-save as before but for an empty nat table',
          );
        }
      },
    );

    t.test(`${be}: apply + clean on a host without any rules`, async (t) => {
      const ns = createNetns('nf');
      const stateDir = tmpDir(t, 'nf-state-', { mode: 0o700 });
      t.teardown(() => {
        ns.remove();
      });
      const io = { exec: ns.exec, stateDir };
      const before = save(ns, be);
      const cfg = testConfig({
        ISTIO_IPTABLES_BACKEND: be,
        ISTIO_SERVICE_CIDR: '10.96.0.0/16,fd00:96::/64',
        ISTIO_INBOUND_PORTS: '*',
        ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
        ENVOY_USER: 'nobody',
        ISTIO_AGENT_STATE_DIR: stateDir,
      });
      const { live, plan } = await prepare(io, cfg.capture);
      await applyPlan(io, plan, live);
      t.match(save(ns, be), /ISTIO_TPROXY/);
      await cleanCapture(io, await readLive(io, be));
      const after = save(ns, be);
      if (be === 'nft') {
        t.equal(after, before, 'nft: exactly as before (the tables we created are deleted again)');
      } else {
        // Legacy tables, once instantiated in a namespace, cannot be removed from userspace;
        // what stays is empty with ACCEPT policies, which filters nothing.
        const leftover = parseSave(after).filter(
          (x) => !parseSave(before).some((b) => b.name === x.name),
        );
        t.ok(
          leftover.every(
            (x) =>
              x.rules.length === 0 &&
              x.userChains.length === 0 &&
              [...x.builtins.values()].every((p) => p === 'ACCEPT'),
          ),
          'legacy: only empty ACCEPT tables are left over',
        );
        t.equal(
          dropEmptyTables(after),
          dropEmptyTables(before),
          'legacy: otherwise exactly as before',
        );
      }
    });
  }

  t.test(
    'ISTIO_REJECT_INBOUND_IPV6: rejects new inbound IPv6, keeps host rules, loopback and ICMPv6',
    async (t) => {
      const net = createCaptureNet('nf');
      const stateDir = tmpDir(t, 'nf-state-', { mode: 0o700 });
      const servers: Server[] = [];
      t.teardown(() => {
        for (const s of servers) s.stop();
        net.remove();
      });
      servers.push(await startServer(net.host.name, 'app', '::', 8080));
      net.host.runSync('ip6tables', [
        '-A',
        'INPUT',
        '-p',
        'tcp',
        '--dport',
        '2222',
        '-j',
        'ACCEPT',
      ]);
      const io = { exec: net.host.exec, stateDir };
      const before = save(net.host, 'nft');
      t.match(
        await connect(net.peer.name, 'fd00:200::1', 8080),
        /^app /,
        'before: IPv6 inbound works',
      );
      const cfg = testConfig({
        ISTIO_REJECT_INBOUND_IPV6: 'true',
        ENVOY_USER: 'nobody',
        ISTIO_AGENT_STATE_DIR: stateDir,
      });
      const { live, plan } = await prepare(io, cfg.capture);
      await applyPlan(io, plan, live);
      // With the neighbour caches empty, a refusal (not a timeout) also proves that neighbour
      // discovery (ICMPv6) still gets through.
      net.peer.runSync('ip', ['-6', 'neigh', 'flush', 'all']);
      net.host.runSync('ip', ['-6', 'neigh', 'flush', 'all']);
      t.match(
        await connect(net.peer.name, 'fd00:200::1', 8080),
        /^ERROR ECONNREFUSED/,
        'new inbound IPv6 connections are rejected (and NDP works)',
      );
      t.match(await connect(net.peer.name, HOST_IP, 8080), /^app /, 'IPv4 is not affected');
      t.match(
        await connect(net.host.name, '::1', 8080),
        /^app /,
        'loopback IPv6 still works (1.0 rejected it too)',
      );
      t.match(
        save(net.host, 'nft'),
        /-A INPUT -p tcp -m tcp --dport 2222 -j ACCEPT/,
        'the host IPv6 INPUT rule is kept (1.0 flushed INPUT)',
      );
      await cleanCapture(io, await readLive(io, 'auto'));
      t.equal(save(net.host, 'nft'), before, 'clean restores ip6tables-save');
      t.match(
        await connect(net.peer.name, 'fd00:200::1', 8080),
        /^app /,
        'after clean: IPv6 inbound works again',
      );
    },
  );
}
