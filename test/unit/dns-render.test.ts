import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  MANAGED_MARK,
  isManaged,
  localNames,
  nameCount,
  renderKubedns,
  type KubednsInput,
} from '../../src/dns/render';
import { tmpDir } from '../helpers/tmp';

const base: KubednsInput = {
  dnsServer: undefined,
  clusterDomain: 'cluster.local',
  systemNamespace: 'istio-system',
  pilotIp: undefined,
  citadelIp: undefined,
  mixerIp: undefined,
};

/** The lines after the header comments. */
function body(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

void t.test('all variables set: the lines and order of 1.0 generateDnsmasq', (t) => {
  const text = renderKubedns({
    ...base,
    dnsServer: { address: '10.150.0.10', family: 4, port: 53 },
    pilotIp: '10.150.0.7',
    citadelIp: '10.150.0.8',
    mixerIp: '10.150.0.9',
  });
  t.same(body(text), [
    'server=/svc.cluster.local/10.150.0.10',
    'address=/istio-policy/10.150.0.9',
    'address=/istio-telemetry/10.150.0.9',
    'address=/istio-pilot/10.150.0.7',
    'address=/istio-citadel/10.150.0.8',
    'address=/istio-ca/10.150.0.8',
    'address=/istio-policy.istio-system/10.150.0.9',
    'address=/istio-telemetry.istio-system/10.150.0.9',
    'address=/istio-pilot.istio-system/10.150.0.7',
    'address=/istio-citadel.istio-system/10.150.0.8',
    'address=/istio-ca.istio-system/10.150.0.8',
  ]);
  t.ok(text.startsWith(MANAGED_MARK + '\n'), 'first line marks the file as managed');
  t.ok(text.endsWith('\n') && !text.endsWith('\n\n'), 'ends with exactly one newline');
  t.match(text, /istio-node-agent dns clean/, 'the header says how to stop the agent managing it');
  t.equal(
    nameCount({
      ...base,
      dnsServer: { address: '10.150.0.10', family: 4, port: 53 },
      pilotIp: 'a',
      citadelIp: 'b',
      mixerIp: 'c',
    }),
    11,
  );
  t.end();
});

void t.test(
  'every combination of the four variables renders only the lines for what is set',
  (t) => {
    const DNS = '10.0.0.10';
    const P = '10.0.0.1';
    const C = '10.0.0.2';
    const M = '10.0.0.3';
    for (let mask = 0; mask < 16; mask++) {
      const has = {
        dns: (mask & 1) !== 0,
        pilot: (mask & 2) !== 0,
        citadel: (mask & 4) !== 0,
        mixer: (mask & 8) !== 0,
      };
      const input: KubednsInput = {
        ...base,
        dnsServer: has.dns ? { address: DNS, family: 4, port: 53 } : undefined,
        pilotIp: has.pilot ? P : undefined,
        citadelIp: has.citadel ? C : undefined,
        mixerIp: has.mixer ? M : undefined,
      };
      const want: string[] = [];
      if (has.dns) want.push(`server=/svc.cluster.local/${DNS}`);
      for (const suffix of ['', '.istio-system']) {
        if (has.mixer)
          want.push(
            `address=/istio-policy${suffix}/${M}`,
            `address=/istio-telemetry${suffix}/${M}`,
          );
        if (has.pilot) want.push(`address=/istio-pilot${suffix}/${P}`);
        if (has.citadel)
          want.push(`address=/istio-citadel${suffix}/${C}`, `address=/istio-ca${suffix}/${C}`);
      }
      const name = Object.entries(has)
        .filter(([, v]) => v)
        .map(([k]) => k)
        .join('+');
      t.same(body(renderKubedns(input)), want, name || 'nothing set');
      t.equal(nameCount(input), want.length, `${name || 'nothing set'}: name count`);
    }
    t.end();
  },
);

void t.test('IPv6 addresses go in as they are; a port uses dnsmasq #port syntax', (t) => {
  const text = renderKubedns({
    ...base,
    dnsServer: { address: 'fd00:10:96::a', family: 6, port: 53 },
    pilotIp: 'fd00::7',
    citadelIp: '2001:db8::8',
  });
  t.same(body(text), [
    'server=/svc.cluster.local/fd00:10:96::a',
    'address=/istio-pilot/fd00::7',
    'address=/istio-citadel/2001:db8::8',
    'address=/istio-ca/2001:db8::8',
    'address=/istio-pilot.istio-system/fd00::7',
    'address=/istio-citadel.istio-system/2001:db8::8',
    'address=/istio-ca.istio-system/2001:db8::8',
  ]);
  t.same(
    body(renderKubedns({ ...base, dnsServer: { address: 'fd00::a', family: 6, port: 5353 } })),
    ['server=/svc.cluster.local/fd00::a#5353'],
  );
  t.same(
    body(renderKubedns({ ...base, dnsServer: { address: '10.0.0.5', family: 4, port: 5353 } })),
    ['server=/svc.cluster.local/10.0.0.5#5353'],
  );
  t.end();
});

void t.test('cluster domain and system namespace come from the input', (t) => {
  const input = {
    ...base,
    clusterDomain: 'corp.example',
    systemNamespace: 'mesh',
    dnsServer: { address: '10.0.0.10', family: 4 as const, port: 53 },
    pilotIp: '10.0.0.1',
  };
  t.same(body(renderKubedns(input)), [
    'server=/svc.corp.example/10.0.0.10',
    'address=/istio-pilot/10.0.0.1',
    'address=/istio-pilot.mesh/10.0.0.1',
  ]);
  t.same(
    localNames(input).map((n) => n.name),
    ['istio-pilot', 'istio-pilot.mesh'],
  );
  t.end();
});

void t.test('systemd-resolved hosts get the uplink resolv-file line', (t) => {
  const text = renderKubedns({
    ...base,
    pilotIp: '10.0.0.1',
    upstreamResolvFile: '/run/systemd/resolve/resolv.conf',
  });
  t.same(body(text), [
    'resolv-file=/run/systemd/resolve/resolv.conf',
    'address=/istio-pilot/10.0.0.1',
    'address=/istio-pilot.istio-system/10.0.0.1',
  ]);
  t.notMatch(renderKubedns({ ...base, pilotIp: '10.0.0.1' }), /resolv-file/);
  t.end();
});

void t.test('the render is deterministic (unchanged input means byte-equal output)', (t) => {
  const input = { ...base, pilotIp: '10.0.0.1', mixerIp: 'fd00::3' };
  t.equal(renderKubedns(input), renderKubedns({ ...input }));
  t.end();
});

void t.test('isManaged: only files that start with the mark', (t) => {
  t.ok(isManaged(renderKubedns({ ...base, pilotIp: '10.0.0.1' })));
  t.ok(isManaged(Buffer.from(renderKubedns({ ...base, pilotIp: '10.0.0.1' }))));
  t.notOk(isManaged('server=/svc.cluster.local/10.0.0.10\n'), 'a 1.0 hand-placed kubedns');
  t.notOk(isManaged(`# note\n${MANAGED_MARK}\n`), 'the mark must be the first line');
  t.notOk(isManaged(''));
  t.end();
});

const dnsmasq = ['/usr/sbin/dnsmasq', '/sbin/dnsmasq'].find((p) => existsSync(p));
void t.test(
  'dnsmasq --test accepts every rendered form (IPv4, IPv6, ports, resolv-file)',
  { skip: dnsmasq ? false : 'dnsmasq is not installed' },
  (t) => {
    const dir = tmpDir(t, 'dns-render-', { mode: 0o700 });
    const inputs: KubednsInput[] = [
      {
        ...base,
        dnsServer: { address: '10.0.0.10', family: 4, port: 53 },
        pilotIp: '10.0.0.1',
        citadelIp: '10.0.0.2',
        mixerIp: '10.0.0.3',
      },
      {
        ...base,
        dnsServer: { address: 'fd00::a', family: 6, port: 5353 },
        pilotIp: 'fd00::1',
        citadelIp: '::ffff:10.0.0.2',
        mixerIp: '2001:db8::3',
      },
      { ...base, pilotIp: '10.0.0.1', upstreamResolvFile: '/run/systemd/resolve/resolv.conf' },
    ];
    for (const [i, input] of inputs.entries()) {
      const f = path.join(dir, `kubedns${i}`);
      writeFileSync(f, renderKubedns(input));
      const out = execFileSync(dnsmasq!, ['--test', `--conf-file=${f}`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      t.pass(`case ${i}: ${out.trim() || 'syntax check OK'}`);
    }
    // And the check can fail: a broken line is refused.
    const bad = path.join(dir, 'bad');
    writeFileSync(bad, 'address=/istio-pilot/10.0.0.999\n');
    t.throws(
      () => execFileSync(dnsmasq!, ['--test', `--conf-file=${bad}`], { stdio: 'pipe' }),
      'dnsmasq refuses a bad address',
    );
    t.end();
  },
);
