import t from 'tap';
import {
  PROBE_IPS,
  canonicalCidrs,
  cidrsFromRangeError,
  familyNotConfigured,
  parseServiceCidrs,
  probeService,
  statusTexts,
} from '../../src/cluster/cidr';

const status = (message: string, causes: string[] = []) => ({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  reason: 'Invalid',
  code: 422,
  message,
  details: {
    name: 'p',
    kind: 'Service',
    causes: causes.map((m) => ({ reason: 'FieldValueInvalid', message: m })),
  },
});

void t.test(
  "the range from the API server's answers, as each Kubernetes release words it",
  async (t) => {
    const cases: [string, string, string[]][] = [
      [
        '1.20+ (clusterIPs, "the provided IP (…)")',
        'Service "p" is invalid: spec.clusterIPs: Invalid value: []string{"203.0.113.1"}: failed to allocate IP 203.0.113.1: the provided IP (203.0.113.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
        ['10.96.0.0/12'],
      ],
      [
        'older ("provided IP is not in the valid range")',
        'Service "p" is invalid: spec.clusterIP: Invalid value: "203.0.113.1": provided IP is not in the valid range. The range of valid IPs is 10.0.0.0/24',
        ['10.0.0.0/24'],
      ],
      [
        '"failed to allocated ip" (1.20–1.22)',
        'The Service "p" is invalid: spec.clusterIPs: Invalid value: []string{"1.1.1.1"}: failed to allocated ip:1.1.1.1 with error:provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16',
        ['10.43.0.0/16'],
      ],
      [
        'the ServiceCIDR allocator (1.31+): several ranges, space-separated, trailing space',
        'Service "p" is invalid: spec.clusterIPs[0]: Invalid value: "203.0.113.1": failed to allocate IP 203.0.113.1: the provided IP (203.0.113.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12 10.100.0.0/16 ',
        ['10.96.0.0/12', '10.100.0.0/16'],
      ],
      [
        'IPv6',
        'Service "p" is invalid: spec.clusterIPs: Invalid value: []string{"2001:db8::1"}: failed to allocate IP 2001:db8::1: the provided IP (2001:db8::1) is not in the valid range. The range of valid IPs is fd00:10:96::/112',
        ['fd00:10:96::/112'],
      ],
      ['a trailing full stop', 'x. The range of valid IPs is 10.96.0.0/12.', ['10.96.0.0/12']],
      ['no range named', 'Service "p" is invalid: metadata.name: Required value', []],
    ];
    for (const [what, msg, want] of cases) t.same(cidrsFromRangeError(status(msg)), want, what);
  },
);

void t.test('the Status as text, the causes too, and garbage', async (t) => {
  const s = status('Service "p" is invalid: [spec.clusterIPs: Invalid value …, spec.x: …]', [
    'Invalid value: []string{"203.0.113.1"}: failed to allocate IP 203.0.113.1: the provided IP (203.0.113.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
  ]);
  t.same(cidrsFromRangeError(s), ['10.96.0.0/12'], 'found in a cause');
  t.same(
    cidrsFromRangeError(JSON.stringify(s)),
    ['10.96.0.0/12'],
    'the body as the client hands it: text',
  );
  t.same(statusTexts('404 page not found\n'), ['404 page not found\n'], 'plain text stays text');
  t.same(statusTexts(undefined), []);
  t.same(statusTexts(42), []);
  t.same(
    cidrsFromRangeError('The range of valid IPs is 010.96.0.0/12'),
    [],
    'an octal-looking octet is not taken',
  );
  t.same(cidrsFromRangeError('The range of valid IPs is 10.96.0.0/33'), []);
});

void t.test('a family the cluster does not have', async (t) => {
  t.ok(
    familyNotConfigured(
      status(
        'Service "p" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster',
      ),
    ),
  );
  t.notOk(familyNotConfigured(status('The range of valid IPs is 10.96.0.0/12')));
});

void t.test('the probe: documentation addresses, a dry-run Service asking for one', async (t) => {
  t.same(PROBE_IPS[4], ['203.0.113.1', '198.51.100.1']);
  const s = probeService('203.0.113.1');
  t.equal(s.spec?.clusterIP, '203.0.113.1');
  t.same(s.spec?.clusterIPs, ['203.0.113.1']);
  t.notOk(s.spec?.selector, 'no selector');
});

void t.test('ServiceCIDR ranges: canonical, deduplicated, junk skipped', async (t) => {
  t.same(canonicalCidrs(['10.96.0.0/12', ' fd00::/108', '10.96.0.0/12', 'bad']), [
    '10.96.0.0/12',
    'fd00::/108',
  ]);
});

void t.test(
  '--service-cidr: ranges canonical and in order; blanks and empty items ignored',
  async (t) => {
    t.same(parseServiceCidrs('10.96.0.0/12'), ['10.96.0.0/12']);
    t.same(parseServiceCidrs(' 10.96.0.0/12 , fd00::/108,,10.0.0.1'), [
      '10.96.0.0/12',
      'fd00::/108',
      '10.0.0.1/32',
    ]);
    t.same(parseServiceCidrs(' , '), [], 'nothing given: empty (the command says so)');
    t.match(parseServiceCidrs('10.96.0.0/12,10.0.0.0/33'), /"10\.0\.0\.0\/33" has prefix \/33/);
    t.match(parseServiceCidrs('010.96.0.0/12'), /leading zero/);
  },
);
