// The pure DNS decisions, with host facts made up in the test (no files): the plan
// (src/dns/plan.ts), the settings it reads (settings.ts) and the note when DNS is off (notes.ts).
import t from 'tap';
import type { FileState } from '../../src/dns/files';
import { offNoteFor } from '../../src/dns/notes';
import { dropInAction, planDns } from '../../src/dns/plan';
import type { HostFacts } from '../../src/dns/probe';
import { MANAGED_MARK, renderKubedns } from '../../src/dns/render';
import {
  RESOLV_CONF,
  RESOLV_CONF_BLOCK,
  RESOLVED_DROP_IN,
  type ResolverFacts,
} from '../../src/dns/resolver';
import { dnsSettings, dropInPath, kubednsInput } from '../../src/dns/settings';
import type { ChangeRecord } from '../../src/dns/state';
import { testConfig } from '../helpers/config';

const ABSENT: FileState = { kind: 'absent' };
const file = (content: string, mode = 0o644): FileState => ({
  kind: 'file',
  bytes: Buffer.from(content),
  mode,
  uid: 0,
  gid: 0,
});

const NO_RESOLVER: ResolverFacts = {
  resolvConf: ABSENT,
  resolvConfFinal: undefined,
  dhclientConf: ABSENT,
  dhclientLease: undefined,
  resolvedRunning: false,
  resolvedDropIn: ABSENT,
};

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return { dropIn: ABSENT, resolver: NO_RESOLVER, state: undefined, ...over };
}

function change(path: string, role: ChangeRecord['role']): ChangeRecord {
  return {
    path,
    role,
    original: { kind: 'absent' },
    writtenSha256: 'x',
    createdDirs: [],
    since: '2026-01-01T00:00:00.000Z',
  };
}

const s = (vars: Record<string, string>) =>
  dnsSettings(testConfig({ ISTIO_DNS_RESOLVER: 'none', ...vars }));

void t.test('settings: the drop-in path and what it is rendered from', (t) => {
  const on = s({
    ISTIO_DNS_SERVER: '10.96.0.10',
    ISTIO_PILOT_IP: '10.0.0.7',
    ISTIO_DNSMASQ_DIR: '/etc/dnsmasq.alt',
  });
  t.equal(dropInPath(on), '/etc/dnsmasq.alt/kubedns');
  const input = kubednsInput(on);
  t.equal(input.pilotIp, '10.0.0.7');
  t.equal(input.citadelIp, undefined);
  t.equal(input.clusterDomain, 'cluster.local');
  t.equal(input.systemNamespace, 'istio-system');
  t.match(input.dnsServer, { address: '10.96.0.10', port: 53 });
  t.notOk('upstreamResolvFile' in input, 'no resolv-file unless asked');
  t.equal(kubednsInput(on, '/run/x').upstreamResolvFile, '/run/x');
  t.end();
});

void t.test('dropInAction: create, update, unchanged, take-over', (t) => {
  const ours = `${MANAGED_MARK}\naddress=/istio-pilot/10.0.0.7\n`;
  t.equal(dropInAction(ABSENT, ours), 'create');
  t.equal(dropInAction(file(ours), ours), 'unchanged');
  t.equal(dropInAction(file(ours, 0o600), ours), 'unchanged', 'content decides, not the mode');
  t.equal(dropInAction(file(`${MANAGED_MARK}\nold\n`), ours), 'update');
  t.equal(dropInAction(file('address=/istio-pilot/10.0.0.7\n'), ours), 'take-over');
  t.equal(dropInAction({ kind: 'symlink', target: '/x' }, ours), 'take-over');
  t.end();
});

void t.test('planDns: the drop-in from the settings, compared with what is there', (t) => {
  const settings = s({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_MIXER_IP: '10.0.0.9' });
  const first = planDns(settings, facts());
  t.equal(first.dropInPath, '/etc/dnsmasq.d/kubedns');
  t.equal(first.dropIn, 'create');
  t.equal(first.content, renderKubedns(kubednsInput(settings)));
  t.equal(first.names, 6, 'pilot, policy and telemetry, bare and with the namespace');
  t.same(first.dropInBefore, ABSENT);
  t.equal(first.resolver.kind, 'none');
  t.same(first.resolver.edits, []);
  t.same(first.undo, []);

  const again = planDns(settings, facts({ dropIn: file(first.content) }));
  t.equal(again.dropIn, 'unchanged');
  t.equal(again.content, first.content, 'the same input, the same bytes');
  t.end();
});

void t.test('planDns: resolver edits and the drop-in for systemd-resolved', (t) => {
  const rc = planDns(
    s({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'resolv.conf' }),
    facts({ resolver: { ...NO_RESOLVER, resolvConf: file('nameserver 10.0.0.2\n') } }),
  );
  t.equal(rc.resolver.kind, 'resolv.conf');
  t.same(
    rc.resolver.edits.map((e) => [e.path, e.action, e.after]),
    [[RESOLV_CONF, 'prepend', RESOLV_CONF_BLOCK + 'nameserver 10.0.0.2\n']],
  );

  const resolved = planDns(
    s({ ISTIO_DNS_SERVER: '10.96.0.10', ISTIO_DNS_RESOLVER: 'resolved' }),
    facts({ resolver: { ...NO_RESOLVER, resolvedRunning: true } }),
  );
  t.equal(resolved.resolver.kind, 'resolved');
  t.same(
    resolved.resolver.edits.map((e) => e.path),
    [RESOLVED_DROP_IN],
  );
  t.match(
    resolved.content,
    /^resolv-file=\/run\/systemd\/resolve\/resolv\.conf$/m,
    "dnsmasq takes its upstream servers from resolved's uplink list",
  );
  t.match(resolved.content, /^server=\/svc\.cluster\.local\/10\.96\.0\.10$/m);
  t.end();
});

void t.test('planDns: earlier changes the current setup no longer wants are undone', (t) => {
  const state = {
    version: 1 as const,
    changes: [
      change(RESOLV_CONF, 'resolver'),
      change(RESOLVED_DROP_IN, 'resolver'),
      change('/etc/dnsmasq.d/kubedns', 'drop-in'),
      change('/etc/dnsmasq.old/kubedns', 'drop-in'),
    ],
  };
  const p = planDns(
    s({ ISTIO_PILOT_IP: '10.0.0.7', ISTIO_DNS_RESOLVER: 'resolv.conf' }),
    facts({ state, resolver: { ...NO_RESOLVER, resolvConf: file('nameserver 10.0.0.2\n') } }),
  );
  t.same(
    p.undo.map((u) => u.path),
    [RESOLVED_DROP_IN, '/etc/dnsmasq.old/kubedns'],
    'the resolver file this setup does not own and the drop-in of another directory',
  );
  const none = planDns(s({ ISTIO_PILOT_IP: '10.0.0.7' }), facts({ state }));
  t.same(
    none.undo.map((u) => u.path),
    [RESOLV_CONF, RESOLVED_DROP_IN, '/etc/dnsmasq.old/kubedns'],
    'ISTIO_DNS_RESOLVER=none owns no resolver file',
  );
  t.end();
});

void t.test('offNoteFor: nothing, the agent’s own drop-in, a hand-placed one', (t) => {
  const p = '/etc/dnsmasq.d/kubedns';
  t.equal(offNoteFor(p, ABSENT), undefined);
  const own = offNoteFor(p, file(`${MANAGED_MARK}\n`));
  t.equal(own?.managed, true);
  t.match(own?.message, /\/etc\/dnsmasq\.d\/kubedns was written by the agent/);
  t.match(own?.message, /istio-node-agent dns clean/);
  const hand = offNoteFor(p, file('address=/x/1.2.3.4\n'));
  t.equal(hand?.managed, false);
  t.match(hand?.message, /placed by hand.*leaves it alone/);
  t.equal(offNoteFor(p, { kind: 'symlink', target: '/x' })?.managed, false);
  t.end();
});
