import t from 'tap';
import { testConfig } from '../helpers/config';
import { AgentError } from '../../src/lib/errors';
import { canonicalCidr, destMatch } from '../../src/netfilter/cidr';
import { parseCidr, type Cidr } from '../../src/config/net';
import {
  planCapture,
  renderFamily,
  renderPlan,
  samePlan,
  type CapturePlan,
  type IpFamily,
} from '../../src/netfilter/plan';

// Table tests of the pure plan: configuration in, the rules 1.0's istio-iptables.sh would have
// installed out (in iptables-save's text form), minus 1.0's defects.

const IDS = { uid: 999, gid: 998 }; // a proxy user whose gid differs from its uid
const BOTH: IpFamily[] = [4, 6];

const plan = (vars: Record<string, string>, families: IpFamily[] = BOTH): CapturePlan =>
  planCapture(testConfig(vars).capture, IDS, families);

function chains(
  p: CapturePlan,
  family: IpFamily,
  table: string,
): Record<string, readonly string[]> {
  const tp = p.families.find((f) => f.family === family)?.tables.find((x) => x.table === table);
  return Object.fromEntries((tp?.chains ?? []).map((c) => [c.name, c.rules]));
}

function jumps(p: CapturePlan, family: IpFamily, table: string): string[] {
  const tp = p.families.find((f) => f.family === family)?.tables.find((x) => x.table === table);
  return (tp?.jumps ?? []).map((j) => `${j.first ? '-I' : '-A'} ${j.chain} ${j.rule}`);
}

const OWNER = [
  '-m owner --uid-owner 999 -j RETURN',
  '-m owner --uid-owner 0 -j RETURN',
  '-m owner --gid-owner 998 -j RETURN',
  '-m owner --gid-owner 0 -j RETURN',
];
const OUT_HEAD = [
  '! -d 127.0.0.1/32 -o lo -j ISTIO_REDIRECT',
  ...OWNER,
  '-d 127.0.0.1/32 -j RETURN',
];
const OUT_HEAD6 = ['! -d ::1/128 -o lo -j ISTIO_REDIRECT', ...OWNER, '-d ::1/128 -j RETURN'];
const REDIRECTS = {
  ISTIO_REDIRECT: ['-p tcp -j REDIRECT --to-ports 15001'],
  ISTIO_IN_REDIRECT: ['-p tcp -j REDIRECT --to-ports 15001'],
};

interface Case {
  readonly name: string;
  readonly vars: Record<string, string>;
  readonly families?: IpFamily[];
  readonly nat4?: Record<string, readonly string[]>;
  readonly mangle4?: Record<string, readonly string[]>;
  readonly nat6?: Record<string, readonly string[]>;
  readonly mangle6?: Record<string, readonly string[]>;
  readonly filter6?: Record<string, readonly string[]>;
  readonly jumps?: Partial<Record<'nat4' | 'mangle4' | 'nat6' | 'mangle6' | 'filter6', string[]>>;
  readonly routing?: CapturePlan['routing'];
  readonly warnings?: RegExp[];
  readonly ruleCount?: number;
}

const cases: Case[] = [
  {
    name: 'defaults: ISTIO_OUTPUT with loopback, owner and localhost rules only; no IPv6',
    vars: {},
    nat4: { ...REDIRECTS, ISTIO_OUTPUT: OUT_HEAD },
    jumps: { nat4: ['-A OUTPUT -p tcp -j ISTIO_OUTPUT'] },
    nat6: {},
    routing: [],
    ruleCount: 9,
  },
  {
    name: 'a service CIDR: redirected, everything else returns',
    vars: { ISTIO_SERVICE_CIDR: '10.55.240.0/20' },
    nat4: {
      ...REDIRECTS,
      ISTIO_OUTPUT: [...OUT_HEAD, '-d 10.55.240.0/20 -j ISTIO_REDIRECT', '-j RETURN'],
    },
  },
  {
    name: 'several CIDRs with an exclusion: exclusions first, host bits cleared as iptables prints them',
    vars: {
      ISTIO_SERVICE_CIDR: '10.96.1.2/16, 10.100.0.0/16,192.168.7.7',
      ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.5.0/24',
    },
    nat4: {
      ...REDIRECTS,
      ISTIO_OUTPUT: [
        ...OUT_HEAD,
        '-d 10.96.5.0/24 -j RETURN',
        '-d 10.96.0.0/16 -j ISTIO_REDIRECT',
        '-d 10.100.0.0/16 -j ISTIO_REDIRECT',
        '-d 192.168.7.7/32 -j ISTIO_REDIRECT',
        '-j RETURN',
      ],
    },
  },
  {
    name: 'outbound *: everything IPv4 redirected after the exclusions, no final RETURN',
    vars: { ISTIO_SERVICE_CIDR: '*', ISTIO_SERVICE_EXCLUDE_CIDR: '169.254.169.254/32,fd00::/8' },
    nat4: {
      ...REDIRECTS,
      ISTIO_OUTPUT: [...OUT_HEAD, '-d 169.254.169.254/32 -j RETURN', '-j ISTIO_REDIRECT'],
    },
    nat6: {},
  },
  {
    name: 'inbound *: 22 first, then the excluded ports, then the rest to ISTIO_IN_REDIRECT',
    vars: { ISTIO_INBOUND_PORTS: '*', ISTIO_LOCAL_EXCLUDE_PORTS: '15090,22,15020' },
    nat4: {
      ...REDIRECTS,
      ISTIO_INBOUND: [
        '-p tcp -m tcp --dport 22 -j RETURN',
        '-p tcp -m tcp --dport 15090 -j RETURN',
        '-p tcp -m tcp --dport 15020 -j RETURN',
        '-p tcp -j ISTIO_IN_REDIRECT',
      ],
      ISTIO_OUTPUT: OUT_HEAD,
    },
    jumps: { nat4: ['-A PREROUTING -p tcp -j ISTIO_INBOUND', '-A OUTPUT -p tcp -j ISTIO_OUTPUT'] },
  },
  {
    name: 'an inbound port list: one rule per port; 22 is left out; exclusions ignored; INBOUND_CAPTURE_PORT',
    vars: {
      ISTIO_INBOUND_PORTS: '8080,22,9090,8080',
      ISTIO_LOCAL_EXCLUDE_PORTS: '15090',
      INBOUND_CAPTURE_PORT: '15006',
    },
    nat4: {
      ISTIO_REDIRECT: ['-p tcp -j REDIRECT --to-ports 15001'],
      ISTIO_IN_REDIRECT: ['-p tcp -j REDIRECT --to-ports 15006'],
      ISTIO_INBOUND: [
        '-p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT',
        '-p tcp -m tcp --dport 9090 -j ISTIO_IN_REDIRECT',
      ],
      ISTIO_OUTPUT: OUT_HEAD,
    },
    warnings: [
      /lists 22; SSH is never captured/,
      /ISTIO_LOCAL_EXCLUDE_PORTS applies only when ISTIO_INBOUND_PORTS=\*/,
    ],
  },
  {
    name: 'TPROXY with a port list: mangle chains, one socket rule per port (1.0 had two), policy routing',
    vars: {
      ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
      ISTIO_INBOUND_PORTS: '8080,9090',
      ENVOY_PORT: '15002',
      ISTIO_INBOUND_TPROXY_MARK: '77',
      ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '100',
    },
    nat4: {
      ISTIO_REDIRECT: ['-p tcp -j REDIRECT --to-ports 15002'],
      ISTIO_IN_REDIRECT: ['-p tcp -j REDIRECT --to-ports 15002'],
      ISTIO_OUTPUT: OUT_HEAD,
    },
    mangle4: {
      ISTIO_DIVERT: ['-j MARK --set-xmark 0x4d/0xffffffff', '-j ACCEPT'],
      ISTIO_TPROXY: [
        '! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15002 --on-ip 0.0.0.0 --tproxy-mark 0x4d/0xffffffff',
      ],
      ISTIO_INBOUND: [
        '-p tcp -m tcp --dport 8080 -m socket -j ISTIO_DIVERT',
        '-p tcp -m tcp --dport 8080 -j ISTIO_TPROXY',
        '-p tcp -m tcp --dport 9090 -m socket -j ISTIO_DIVERT',
        '-p tcp -m tcp --dport 9090 -j ISTIO_TPROXY',
      ],
    },
    jumps: {
      nat4: ['-A OUTPUT -p tcp -j ISTIO_OUTPUT'],
      mangle4: ['-A PREROUTING -p tcp -j ISTIO_INBOUND'],
    },
    routing: [{ family: 4, mark: 77, table: 100 }],
  },
  {
    name: 'TPROXY with *: 22 and exclusions return, established sockets divert, the rest to TPROXY',
    vars: {
      ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
      ISTIO_INBOUND_PORTS: '*',
      ISTIO_LOCAL_EXCLUDE_PORTS: '15090',
    },
    mangle4: {
      ISTIO_DIVERT: ['-j MARK --set-xmark 0x539/0xffffffff', '-j ACCEPT'],
      ISTIO_TPROXY: [
        '! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15001 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff',
      ],
      ISTIO_INBOUND: [
        '-p tcp -m tcp --dport 22 -j RETURN',
        '-p tcp -m tcp --dport 15090 -j RETURN',
        '-p tcp -m socket -j ISTIO_DIVERT',
        '-p tcp -j ISTIO_TPROXY',
      ],
    },
    routing: [{ family: 4, mark: 1337, table: 133 }],
  },
  {
    name: 'IPv6 ranges: ip6tables nat mirrors IPv4 with ::1; each family gets its own ranges; ::/0 has no -d',
    vars: {
      ISTIO_SERVICE_CIDR: '10.96.0.0/16,FD00:96:0::1/64,::/0',
      ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.5.0/24,fd00:96::5',
      ISTIO_INBOUND_PORTS: '8080',
    },
    nat4: {
      ...REDIRECTS,
      ISTIO_INBOUND: ['-p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT'],
      ISTIO_OUTPUT: [
        ...OUT_HEAD,
        '-d 10.96.5.0/24 -j RETURN',
        '-d 10.96.0.0/16 -j ISTIO_REDIRECT',
        '-j RETURN',
      ],
    },
    nat6: {
      ...REDIRECTS,
      ISTIO_OUTPUT: [
        ...OUT_HEAD6,
        '-d fd00:96::5/128 -j RETURN',
        '-d fd00:96::/64 -j ISTIO_REDIRECT',
        '-j ISTIO_REDIRECT',
        '-j RETURN',
      ],
    },
    jumps: { nat6: ['-A OUTPUT -p tcp -j ISTIO_OUTPUT'] },
  },
  {
    name: 'ENABLE_INBOUND_IPV6 with TPROXY: IPv6 inbound captured too, with its own policy routing',
    vars: {
      ENABLE_INBOUND_IPV6: 'true',
      ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY',
      ISTIO_INBOUND_PORTS: '8080',
    },
    nat6: { ...REDIRECTS, ISTIO_OUTPUT: OUT_HEAD6 },
    mangle6: {
      ISTIO_DIVERT: ['-j MARK --set-xmark 0x539/0xffffffff', '-j ACCEPT'],
      ISTIO_TPROXY: [
        '! -d ::1/128 -p tcp -j TPROXY --on-port 15001 --on-ip :: --tproxy-mark 0x539/0xffffffff',
      ],
      ISTIO_INBOUND: [
        '-p tcp -m tcp --dport 8080 -m socket -j ISTIO_DIVERT',
        '-p tcp -m tcp --dport 8080 -j ISTIO_TPROXY',
      ],
    },
    routing: [
      { family: 4, mark: 1337, table: 133 },
      { family: 6, mark: 1337, table: 133 },
    ],
  },
  {
    name: 'ISTIO_REJECT_INBOUND_IPV6: our own filter chain, inserted first, sparing loopback, ICMPv6 and established',
    vars: { ISTIO_REJECT_INBOUND_IPV6: 'true' },
    nat6: {},
    filter6: {
      ISTIO_REJECT_IPV6: [
        '-i lo -j RETURN',
        '-p ipv6-icmp -j RETURN',
        '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
        '-j REJECT --reject-with icmp6-port-unreachable',
      ],
    },
    jumps: { filter6: ['-I INPUT -j ISTIO_REJECT_IPV6'] },
  },
  {
    name: 'IPv6 configured but no ip6tables: IPv4 only, with a warning',
    vars: { ISTIO_SERVICE_CIDR: 'fd00::/8' },
    families: [4],
    nat4: { ...REDIRECTS, ISTIO_OUTPUT: OUT_HEAD },
    warnings: [/ip6tables is not usable/],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const p = plan(c.vars, c.families);
    t.same(
      p.families.map((f) => f.family),
      c.families ?? BOTH,
      'one entry per usable family',
    );
    if (c.nat4) t.same(chains(p, 4, 'nat'), c.nat4, 'ipv4 nat');
    if (c.mangle4) t.same(chains(p, 4, 'mangle'), c.mangle4, 'ipv4 mangle');
    if (c.nat6) t.same(chains(p, 6, 'nat'), c.nat6, 'ipv6 nat');
    if (c.mangle6) t.same(chains(p, 6, 'mangle'), c.mangle6, 'ipv6 mangle');
    if (c.filter6) t.same(chains(p, 6, 'filter'), c.filter6, 'ipv6 filter');
    if (c.jumps?.nat4) t.same(jumps(p, 4, 'nat'), c.jumps.nat4, 'ipv4 nat jumps');
    if (c.jumps?.mangle4) t.same(jumps(p, 4, 'mangle'), c.jumps.mangle4, 'ipv4 mangle jumps');
    if (c.jumps?.nat6) t.same(jumps(p, 6, 'nat'), c.jumps.nat6, 'ipv6 nat jumps');
    if (c.jumps?.filter6) t.same(jumps(p, 6, 'filter'), c.jumps.filter6, 'ipv6 filter jumps');
    if (c.routing) t.same(p.routing, c.routing, 'policy routing');
    if (c.ruleCount !== undefined) t.equal(p.ruleCount, c.ruleCount, 'rule count');
    t.equal(p.warnings.length, c.warnings?.length ?? 0, 'warnings');
    for (const w of c.warnings ?? [])
      t.ok(
        p.warnings.some((x) => w.test(x)),
        `warns ${w}`,
      );
  });
}

t.test('ENVOY_USER root: uid and gid 0 appear once', async (t) => {
  const p = planCapture(testConfig({}).capture, { uid: 0, gid: 0 }, [4]);
  t.same(chains(p, 4, 'nat').ISTIO_OUTPUT, [
    '! -d 127.0.0.1/32 -o lo -j ISTIO_REDIRECT',
    '-m owner --uid-owner 0 -j RETURN',
    '-m owner --gid-owner 0 -j RETURN',
    '-d 127.0.0.1/32 -j RETURN',
  ]);
});

t.test('render: the exact iptables-restore --noflush input (the bench config)', async (t) => {
  const p = plan({
    ISTIO_SERVICE_CIDR: '10.96.0.0/16,10.100.0.0/16',
    ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.5.0/24',
    ISTIO_INBOUND_PORTS: '8080,9090',
  });
  t.equal(
    renderFamily(p.families[0]!),
    `*nat
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_OUTPUT - [0:0]
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT
-A ISTIO_INBOUND -p tcp -m tcp --dport 9090 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ISTIO_REDIRECT
-A ISTIO_OUTPUT -m owner --uid-owner 999 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 0 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 998 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 0 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -d 10.96.5.0/24 -j RETURN
-A ISTIO_OUTPUT -d 10.96.0.0/16 -j ISTIO_REDIRECT
-A ISTIO_OUTPUT -d 10.100.0.0/16 -j ISTIO_REDIRECT
-A ISTIO_OUTPUT -j RETURN
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -p tcp -j ISTIO_OUTPUT
COMMIT
`,
  );
  t.equal(p.ruleCount, 16);
  t.match(
    renderPlan(p),
    /^# ipv4: iptables-restore --noflush\n\*nat\n[\s\S]*COMMIT\n# ipv6: no rules/,
  );
  const tp = plan({ ISTIO_INBOUND_INTERCEPTION_MODE: 'TPROXY', ISTIO_INBOUND_PORTS: '80' });
  t.match(
    renderPlan(tp),
    '# ip -4 rule add fwmark 1337 lookup 133\n# ip -4 route add local default dev lo table 133\n',
  );
  t.match(
    renderFamily(plan({ ISTIO_REJECT_INBOUND_IPV6: 'true' }).families[1]!),
    '-I INPUT 1 -j ISTIO_REJECT_IPV6\n',
    'a first-position jump renders as -I 1',
  );
});

t.test('samePlan: equal configs plan equal; any rule change does not', async (t) => {
  const a = plan({ ISTIO_SERVICE_CIDR: '10.0.0.0/8' });
  t.ok(
    samePlan(a, plan({ ISTIO_SERVICE_CIDR: '10.0.0.0/8', ISTIO_CAPTURE_CHECK_INTERVAL: '5s' })),
    'settings outside the rules do not count',
  );
  t.notOk(samePlan(a, plan({ ISTIO_SERVICE_CIDR: '10.0.0.0/9' })));
  t.notOk(
    samePlan(
      a,
      planCapture(
        testConfig({ ISTIO_SERVICE_CIDR: '10.0.0.0/8' }).capture,
        { uid: 1, gid: 998 },
        BOTH,
      ),
    ),
  );
});

t.test('CIDRs in iptables-save form (glibc inet_ntop)', async (t) => {
  const c = (s: string): Cidr => parseCidr(s) as Cidr;
  const vectors: [string, string][] = [
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['10.1.2.255/25', '10.1.2.128/25'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['FD00:0:0::1:2/64', 'fd00::/64'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1/128'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3/128'],
    ['0:0:0:0:0:1:0:0', '::1:0:0/128'],
    ['::2', '::2/128'],
    ['::1.2.3.4', '::1.2.3.4/128'],
    ['::ffff:10.0.0.0/104', '::ffff:10.0.0.0/104'],
    ['::ffff:0:0/96', '::ffff:0.0.0.0/96'],
    ['fe80::1/10', 'fe80::/10'],
    ['::', '::/128'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8/128'],
  ];
  for (const [input, want] of vectors) t.equal(canonicalCidr(c(input)), want, input);
  t.equal(destMatch(c('0.0.0.0/0')), '', 'iptables prints no -d for /0');
  t.equal(destMatch(c('::/0')), '');
});

t.test('bad input: configuration errors name file, line and variable (exit 78)', async (t) => {
  const bad: [Record<string, string>, string, RegExp][] = [
    [{ ISTIO_SERVICE_CIDR: '10.0.0.0/33' }, 'ISTIO_SERVICE_CIDR', /above the maximum \/32/],
    [{ ISTIO_SERVICE_CIDR: '10.0.0.0/8,010.1.1.1' }, 'ISTIO_SERVICE_CIDR', /leading zero/],
    [{ ISTIO_SERVICE_EXCLUDE_CIDR: '10.0.0.300' }, 'ISTIO_SERVICE_EXCLUDE_CIDR', /not a CIDR/],
    [{ ISTIO_SERVICE_CIDR: '*,10.0.0.0/8' }, 'ISTIO_SERVICE_CIDR', /not a CIDR/],
    [{ ISTIO_SERVICE_CIDR: 'fd00::/129' }, 'ISTIO_SERVICE_CIDR', /above the maximum \/128/],
    [{ ISTIO_INBOUND_PORTS: '80,70000' }, 'ISTIO_INBOUND_PORTS', /"70000" is not a port/],
    [{ ISTIO_INBOUND_PORTS: '0' }, 'ISTIO_INBOUND_PORTS', /not a port/],
    [{ ISTIO_LOCAL_EXCLUDE_PORTS: 'http' }, 'ISTIO_LOCAL_EXCLUDE_PORTS', /not a port/],
    [{ ENVOY_PORT: '65536' }, 'ENVOY_PORT', /out of range/],
    [
      { ISTIO_INBOUND_INTERCEPTION_MODE: 'tproxy' },
      'ISTIO_INBOUND_INTERCEPTION_MODE',
      /not one of REDIRECT, TPROXY/,
    ],
    [
      { ISTIO_INBOUND_TPROXY_ROUTE_TABLE: '254' },
      'ISTIO_INBOUND_TPROXY_ROUTE_TABLE',
      /out of range/,
    ],
    [{ ENVOY_USER: '-rf' }, 'ENVOY_USER', /not a user name/],
    [{ ENVOY_USER: 'a b' }, 'ENVOY_USER', /not a user name/],
    [
      { ISTIO_IPTABLES_BACKEND: 'iptables' },
      'ISTIO_IPTABLES_BACKEND',
      /not one of auto, nft, legacy/,
    ],
    [{ ENABLE_INBOUND_IPV6: 'sure' }, 'ENABLE_INBOUND_IPV6', /not a boolean/],
    [
      { ENABLE_INBOUND_IPV6: 'true', ISTIO_REJECT_INBOUND_IPV6: 'true' },
      'ISTIO_REJECT_INBOUND_IPV6',
      /set only one/,
    ],
  ];
  for (const [vars, variable, msg] of bad) {
    try {
      testConfig({ ISTIO_SYSTEM_NAMESPACE: 'istio-system', ...vars });
      t.fail(`${JSON.stringify(vars)} was accepted`);
    } catch (e) {
      t.ok(e instanceof AgentError, 'an AgentError');
      const err = e as AgentError;
      t.equal(err.code, 'AGENT_E_CONFIG_VALUE');
      t.equal(err.exitCode, 78);
      const line = Object.keys({ ISTIO_SYSTEM_NAMESPACE: '', ...vars }).indexOf(variable) + 1;
      t.same(
        err.origin,
        { file: 'test.env', line, variable },
        `${JSON.stringify(vars)}: names test.env:${line} ${variable}`,
      );
      t.match(err.message, msg);
    }
  }
});

t.test('ENVOY_USER: where it was set is kept (for the unknown-user error)', async (t) => {
  t.equal(testConfig({}).capture.envoyUserOrigin, undefined, 'default istio-proxy: no origin');
  t.same(testConfig({ ISTIO_SERVICE_CIDR: '*', ENVOY_USER: 'proxy' }).capture.envoyUserOrigin, {
    file: 'test.env',
    line: 2,
    variable: 'ENVOY_USER',
  });
});
