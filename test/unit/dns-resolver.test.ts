import t, { type Test } from 'tap';
import { chownSync, existsSync, lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import {
  applyDns,
  cleanDns,
  dnsSettings,
  planDns,
  probeHost,
  type DnsSettings,
} from '../../src/dns/index';
import {
  DHCLIENT_BLOCK,
  RESOLV_CONF_BLOCK,
  chooseResolver,
  firstNameserver,
  renderResolvedDropIn,
  type ResolverFacts,
} from '../../src/dns/resolver';
import { silentLogger } from '../../src/observe/logger';
import { RecordingDnsmasq, link, put, read, snapshot, testHost } from '../helpers/dns-root';
import { testConfig } from '../helpers/config';
import { tmpDir } from '../helpers/tmp';

const log = silentLogger();
const isRoot = process.getuid?.() === 0;
const STATE = 'var/lib/istio/agent';

const VARS = {
  ISTIO_DNS_SERVER: '10.96.0.10',
  ISTIO_PILOT_IP: '10.0.0.7',
  ISTIO_CITADEL_IP: 'fd00::8',
};

function settings(extra: Record<string, string> = {}): DnsSettings {
  return dnsSettings(testConfig({ ...VARS, ...extra }));
}

async function apply(
  root: string,
  s: DnsSettings,
  control = new RecordingDnsmasq(),
  reloads = { n: 0 },
) {
  const facts = await probeHost(s, root);
  const plan = planDns(s, facts);
  const result = await applyDns(
    s,
    plan,
    facts,
    testHost(root, control, { resolvedReloads: reloads }),
    log,
  );
  return { plan, result };
}

/** A root with the drop-in directory and the agent's state directory (as the packages leave them) plus `setup`. */
function fixture(t: Test, setup: (root: string) => void): string {
  // A temporary directory standing in for "/": the component reads and writes only below it.
  const root = tmpDir(t, 'dns-root-', { mode: 0o700 });
  put(root, '/etc/dnsmasq.d/README', 'files in this directory are read by dnsmasq\n');
  mkdirSync(path.join(root, STATE), { recursive: true });
  setup(root);
  return root;
}

/** Apply, check, clean, and compare the whole tree with the one before, byte for byte. */
async function roundTrip(t: Test, root: string, s: DnsSettings, check: (root: string) => void) {
  const before = snapshot(root, [STATE]);
  const reloads = { n: 0 };
  const { plan } = await apply(root, s, new RecordingDnsmasq(), reloads);
  check(root);
  const again = await apply(root, s, new RecordingDnsmasq(), reloads);
  t.same(again.result.edited, [], 'a second apply changes nothing');
  t.equal(again.result.dropIn, 'unchanged');
  const control = new RecordingDnsmasq();
  const r = await cleanDns(s, testHost(root, control, { resolvedReloads: reloads }), log);
  t.same(
    snapshot(root, [STATE]),
    before,
    'after clean every file is back byte for byte (content, mode, owner, links)',
  );
  t.notOk(existsSync(path.join(root, STATE, 'dns-state.json')), 'the change record is gone');
  t.equal(
    control.tryRestarts,
    1,
    'clean restarted dnsmasq (if running) after removing the drop-in',
  );
  return { plan, clean: r, reloads };
}

void t.test(
  'static /etc/resolv.conf: 127.0.0.1 goes first, the original servers stay after it',
  async (t) => {
    const original =
      '# written by the installer\nsearch c.example.internal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions ndots:2\n';
    const root = fixture(t, (r) => {
      put(r, '/etc/resolv.conf', original, 0o640);
      if (isRoot) chownSync(path.join(r, 'etc/resolv.conf'), 1234, 5678);
    });
    const { plan } = await roundTrip(t, root, settings(), (r) => {
      t.equal(
        read(r, '/etc/resolv.conf'),
        RESOLV_CONF_BLOCK + original,
        'block on top, the rest unchanged',
      );
      t.equal(firstNameserver(read(r, '/etc/resolv.conf')), '127.0.0.1');
      const st = lstatSync(path.join(r, 'etc/resolv.conf'));
      t.equal(st.mode & 0o7777, 0o640, 'mode kept while edited');
      if (isRoot) t.same([st.uid, st.gid], [1234, 5678], 'owner kept while edited');
    });
    t.equal(plan.resolver.kind, 'resolv.conf');
    t.match(plan.resolver.reason, 'plain file');
  },
);

void t.test(
  'dhclient: the setupIstioVM.sh line in dhclient.conf, and resolv.conf now',
  async (t) => {
    const conf =
      'option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\nrequest subnet-mask, routers;\ntimeout 300;'; // no final newline
    const resolv =
      'domain c.example.internal\nsearch c.example.internal.\nnameserver 169.254.169.254\n';
    const root = fixture(t, (r) => {
      put(r, '/etc/dhcp/dhclient.conf', conf);
      put(r, '/etc/resolv.conf', resolv);
      put(r, '/var/lib/dhcp/dhclient.ens4.leases', 'lease {\n  interface "ens4";\n}\n');
    });
    const { plan, clean } = await roundTrip(t, root, settings(), (r) => {
      t.equal(read(r, '/etc/dhcp/dhclient.conf'), conf + '\n' + DHCLIENT_BLOCK);
      t.match(read(r, '/etc/dhcp/dhclient.conf'), /^prepend domain-name-servers 127\.0\.0\.1;$/m);
      t.equal(read(r, '/etc/resolv.conf'), RESOLV_CONF_BLOCK + resolv);
    });
    t.equal(plan.resolver.kind, 'dhclient');
    t.match(plan.resolver.reason, '/var/lib/dhcp/dhclient.ens4.leases');
    t.match(clean.notes.join('\n'), 'next lease renewal');
  },
);

void t.test('dhclient.conf that already has the 1.0 line is left alone', async (t) => {
  const conf = 'prepend domain-name-servers 127.0.0.1;\n';
  const root = fixture(t, (r) => {
    put(r, '/etc/dhcp/dhclient.conf', conf);
    put(r, '/etc/resolv.conf', 'nameserver 127.0.0.1\nnameserver 10.0.0.2\n');
    put(r, '/var/lib/dhcp/dhclient.leases', 'lease {}\n');
  });
  const { plan, result } = await apply(root, settings());
  t.equal(plan.resolver.kind, 'dhclient');
  t.same(result.edited, [], 'nothing to add: dhclient and resolv.conf already point at 127.0.0.1');
  await cleanDns(settings(), testHost(root, new RecordingDnsmasq()), log);
  t.equal(
    read(root, '/etc/dhcp/dhclient.conf'),
    conf,
    'clean does not remove a line the agent did not add',
  );
});

void t.test(
  'systemd-resolved: a drop-in routing the mesh names to 127.0.0.1, dnsmasq upstream from the uplink list',
  async (t) => {
    const root = fixture(t, (r) => {
      put(
        r,
        '/run/systemd/resolve/stub-resolv.conf',
        'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n',
      );
      put(r, '/run/systemd/resolve/resolv.conf', 'nameserver 10.0.0.2\n');
      link(r, '/etc/resolv.conf', '../run/systemd/resolve/stub-resolv.conf');
      put(r, '/etc/systemd/resolved.conf', '[Resolve]\n#DNS=\n');
    });
    const { plan, reloads } = await roundTrip(t, root, settings(), (r) => {
      const dropIn = read(r, '/etc/systemd/resolved.conf.d/istio-node-agent.conf');
      t.match(dropIn, /^\[Resolve\]$/m);
      t.match(dropIn, /^DNS=127\.0\.0\.1$/m);
      t.match(
        dropIn,
        /^Domains=~svc\.cluster\.local ~istio-pilot ~istio-citadel ~istio-ca ~istio-pilot\.istio-system ~istio-citadel\.istio-system ~istio-ca\.istio-system$/m,
      );
      t.match(dropIn, /^ResolveUnicastSingleLabel=yes$/m);
      t.equal(
        readlinkSync(path.join(r, 'etc/resolv.conf')),
        '../run/systemd/resolve/stub-resolv.conf',
        'resolv.conf link untouched',
      );
      t.match(
        read(r, '/etc/dnsmasq.d/kubedns'),
        /^resolv-file=\/run\/systemd\/resolve\/resolv\.conf$/m,
      );
    });
    t.equal(plan.resolver.kind, 'resolved');
    t.equal(
      reloads.n,
      2,
      'resolved re-read its configuration after apply and after clean (not after the no-op apply)',
    );
    t.notOk(
      existsSync(path.join(root, 'etc/systemd/resolved.conf.d')),
      'the directory the agent created is gone again',
    );
  },
);

void t.test(
  'resolved drop-in: only the svc domain when only ISTIO_DNS_SERVER is set (no single-label names)',
  (t) => {
    const text = renderResolvedDropIn({ domains: ['svc.cluster.local'] });
    t.match(text, /^Domains=~svc\.cluster\.local$/m);
    t.notMatch(text, /ResolveUnicastSingleLabel/);
    t.end();
  },
);

void t.test(
  'resolv.conf symlink replaced by a file on request, the link put back on clean',
  async (t) => {
    const nm = '# Generated by NetworkManager\nnameserver 192.168.1.1\n';
    const root = fixture(t, (r) => {
      put(r, '/run/NetworkManager/resolv.conf', nm);
      link(r, '/etc/resolv.conf', '/run/NetworkManager/resolv.conf');
    });
    const { plan } = await roundTrip(
      t,
      root,
      settings({ ISTIO_DNS_RESOLVER: 'resolv.conf' }),
      (r) => {
        const st = lstatSync(path.join(r, 'etc/resolv.conf'));
        t.ok(st.isFile(), 'now a regular file');
        t.equal(
          read(r, '/etc/resolv.conf'),
          RESOLV_CONF_BLOCK + nm,
          'a copy of the link target with 127.0.0.1 first',
        );
        t.equal(
          read(r, '/run/NetworkManager/resolv.conf'),
          nm,
          'the link target itself is not touched',
        );
      },
    );
    t.equal(plan.resolver.edits[0]?.action, 'replace-symlink');
    t.match(plan.resolver.notes.join('\n'), 'becomes a file');
  },
);

void t.test(
  'auto leaves a resolv.conf symlink of an unknown manager alone, and says so',
  async (t) => {
    const root = fixture(t, (r) => {
      put(r, '/run/NetworkManager/resolv.conf', 'nameserver 192.168.1.1\n');
      link(r, '/etc/resolv.conf', '/run/NetworkManager/resolv.conf');
    });
    const before = snapshot(root, [STATE]);
    const { plan, result } = await apply(root, settings());
    t.equal(plan.resolver.kind, 'none');
    t.equal(plan.resolver.unwired, true);
    t.match(plan.resolver.reason, 'ISTIO_DNS_RESOLVER=resolv.conf');
    t.same(result.edited, []);
    const after = snapshot(root, [STATE, 'etc/dnsmasq.d/kubedns']);
    t.same(after, before, 'only the drop-in was written');
  },
);

void t.test('resolvconf: the dnsmasq package registers itself, nothing to change', async (t) => {
  const root = fixture(t, (r) => {
    put(r, '/run/resolvconf/resolv.conf', 'nameserver 127.0.0.1\n');
    link(r, '/etc/resolv.conf', '../run/resolvconf/resolv.conf');
  });
  const { plan, result } = await apply(root, settings());
  t.equal(plan.resolver.kind, 'resolvconf');
  t.same(result.edited, []);
});

void t.test('no /etc/resolv.conf: the C library already asks 127.0.0.1', async (t) => {
  const root = fixture(t, () => undefined);
  const { plan, result } = await apply(root, settings());
  t.equal(plan.resolver.kind, 'none');
  t.notOk(plan.resolver.unwired);
  t.same(result.edited, []);
  t.notOk(existsSync(path.join(root, 'etc/resolv.conf')));
});

void t.test('ISTIO_DNS_RESOLVER=none changes no resolver file', async (t) => {
  const root = fixture(t, (r) => {
    put(r, '/etc/resolv.conf', 'nameserver 10.0.0.2\n');
  });
  const { plan, result } = await apply(root, settings({ ISTIO_DNS_RESOLVER: 'none' }));
  t.equal(plan.resolver.kind, 'none');
  t.same(result.edited, []);
  t.equal(read(root, '/etc/resolv.conf'), 'nameserver 10.0.0.2\n');
});

void t.test('edited after apply: clean removes only the lines the agent added', async (t) => {
  const original = 'nameserver 10.0.0.2\n';
  const root = fixture(t, (r) => {
    put(r, '/etc/resolv.conf', original);
  });
  await apply(root, settings());
  put(root, '/etc/resolv.conf', read(root, '/etc/resolv.conf') + 'options timeout:1\n');
  const r = await cleanDns(settings(), testHost(root, new RecordingDnsmasq()), log);
  t.same(
    r.undone.find((u) => u.path === '/etc/resolv.conf'),
    { path: '/etc/resolv.conf', outcome: 'removed-block' },
  );
  t.equal(
    read(root, '/etc/resolv.conf'),
    original + 'options timeout:1\n',
    "the operator's edit stays",
  );
});

void t.test('rewritten after apply (e.g. by dhclient): clean leaves it alone', async (t) => {
  const root = fixture(t, (r) => {
    put(r, '/etc/resolv.conf', 'nameserver 10.0.0.2\n');
  });
  await apply(root, settings());
  put(root, '/etc/resolv.conf', 'nameserver 10.9.9.9\n');
  const r = await cleanDns(settings(), testHost(root, new RecordingDnsmasq()), log);
  t.same(
    r.undone.find((u) => u.path === '/etc/resolv.conf'),
    { path: '/etc/resolv.conf', outcome: 'left-alone' },
  );
  t.equal(read(root, '/etc/resolv.conf'), 'nameserver 10.9.9.9\n');
});

void t.test(
  'after a rewrite, apply wires it again and the record keeps the newest original',
  async (t) => {
    const root = fixture(t, (r) => {
      put(r, '/etc/resolv.conf', 'nameserver 10.0.0.2\n');
    });
    await apply(root, settings());
    put(root, '/etc/resolv.conf', 'nameserver 10.9.9.9\n');
    const { result } = await apply(root, settings());
    t.same(result.edited, ['/etc/resolv.conf']);
    t.equal(read(root, '/etc/resolv.conf'), RESOLV_CONF_BLOCK + 'nameserver 10.9.9.9\n');
    await cleanDns(settings(), testHost(root, new RecordingDnsmasq()), log);
    t.equal(read(root, '/etc/resolv.conf'), 'nameserver 10.9.9.9\n');
  },
);

void t.test('a change of setup undoes the earlier one', async (t) => {
  const original = 'nameserver 10.0.0.2\n';
  const root = fixture(t, (r) => {
    put(r, '/etc/resolv.conf', original);
  });
  await apply(root, settings());
  t.equal(firstNameserver(read(root, '/etc/resolv.conf')), '127.0.0.1');
  const { plan, result } = await apply(root, settings({ ISTIO_DNS_RESOLVER: 'none' }));
  t.same(
    plan.undo.map((u) => u.path),
    ['/etc/resolv.conf'],
  );
  t.same(result.undone, [{ path: '/etc/resolv.conf', outcome: 'restored' }]);
  t.equal(read(root, '/etc/resolv.conf'), original);
});

void t.test(
  'a record written before a change that never happened (crash) is harmless',
  async (t) => {
    const original = 'nameserver 10.0.0.2\n';
    const root = fixture(t, (r) => {
      put(r, '/etc/resolv.conf', original);
    });
    await apply(root, settings());
    // Put the original back behind the agent's back, as if the write had never happened.
    put(root, '/etc/resolv.conf', original);
    const r = await cleanDns(settings(), testHost(root, new RecordingDnsmasq()), log);
    t.same(
      r.undone.find((u) => u.path === '/etc/resolv.conf'),
      { path: '/etc/resolv.conf', outcome: 'already-original' },
    );
    t.equal(read(root, '/etc/resolv.conf'), original);
  },
);

void t.test('chooseResolver (pure)', (t) => {
  const file = (s: string) => ({
    kind: 'file' as const,
    bytes: Buffer.from(s),
    mode: 0o644,
    uid: 0,
    gid: 0,
  });
  const facts = (over: Partial<ResolverFacts>): ResolverFacts => ({
    resolvConf: file('nameserver 10.0.0.2\n'),
    resolvConfFinal: undefined,
    dhclientConf: { kind: 'absent' },
    dhclientLease: undefined,
    resolvedRunning: false,
    resolvedDropIn: { kind: 'absent' },
    ...over,
  });
  t.equal(chooseResolver('auto', facts({})).kind, 'resolv.conf');
  t.equal(
    chooseResolver('auto', facts({ dhclientLease: '/var/lib/dhcp/dhclient.leases' })).kind,
    'dhclient',
  );
  t.equal(
    chooseResolver(
      'auto',
      facts({ resolvConf: file('nameserver 127.0.0.53\n'), resolvedRunning: true }),
    ).kind,
    'resolved',
  );
  t.equal(
    chooseResolver('auto', facts({ resolvConf: file('nameserver 127.0.0.53\n') })).kind,
    'resolv.conf',
    'a copy of the stub file without resolved running',
  );
  t.equal(
    chooseResolver(
      'auto',
      facts({
        resolvConf: { kind: 'symlink', target: '/usr/lib/systemd/resolv.conf' },
        resolvConfFinal: { hostPath: '/usr/lib/systemd/resolv.conf', state: file('') },
      }),
    ).kind,
    'resolved',
  );
  t.equal(chooseResolver('auto', facts({ resolvConf: { kind: 'absent' } })).kind, 'none');
  t.same(
    chooseResolver('dhclient', facts({})),
    { kind: 'dhclient', reason: 'ISTIO_DNS_RESOLVER=dhclient' },
    'an explicit choice wins',
  );
  t.end();
});
