import t from 'tap';
import { describeCall, failureToError, neededPermission } from '../../src/cluster/errors';
import { waitForIlbs } from '../../src/cluster/ilb';
import type { KubeApi, KubeCall, KubeTarget, Service } from '../../src/cluster/kube';
import { rejectsWithCode } from '../helpers/agent-error';
import { SteppingClock } from '../helpers/clock';

const TARGET: KubeTarget = {
  source: '/home/u/.kube/config',
  context: 'prod',
  server: 'https://203.0.113.9:6443',
  user: 'alice@prod',
  namespace: 'default',
};
const GET_SECRET: KubeCall = {
  verb: 'get',
  resource: 'secrets',
  group: '',
  namespace: 'shop',
  name: 'istio.vm',
};
const LIST_CIDRS: KubeCall = { verb: 'list', resource: 'servicecidrs', group: 'networking.k8s.io' };

void t.test('calls are named as RBAC names them', async (t) => {
  t.equal(describeCall(GET_SECRET), 'get secrets "istio.vm" in namespace "shop"');
  t.equal(describeCall(LIST_CIDRS), 'list servicecidrs.networking.k8s.io');
  t.equal(
    describeCall({
      verb: 'create',
      resource: 'services',
      group: '',
      namespace: 'x',
      name: 'p',
      dryRun: true,
    }),
    'create (dry run) services "p" in namespace "x"',
  );
  t.equal(
    neededPermission({
      verb: 'update',
      resource: 'endpointslices',
      group: 'discovery.k8s.io',
      namespace: 'shop',
    }),
    'verb "update" on resource "endpointslices" in apiGroup "discovery.k8s.io" in namespace "shop" (a Role and RoleBinding there)',
  );
  t.match(neededPermission(LIST_CIDRS), /at the cluster scope \(a ClusterRole/);
});

void t.test(
  '403: the object, the verb, what the API said and the permission to grant',
  async (t) => {
    const body = JSON.stringify({
      kind: 'Status',
      message:
        'secrets "istio.vm" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "shop"',
      reason: 'Forbidden',
      code: 403,
    });
    const e = failureToError({ call: GET_SECRET, status: 403, body, message: 'HTTP 403' }, TARGET);
    t.equal(e.code, 'AGENT_E_CLUSTER_FORBIDDEN');
    t.equal(e.exitCode, 1);
    t.match(
      e.message,
      /^cannot get secrets "istio\.vm" in namespace "shop": forbidden \(403\): secrets "istio\.vm" is forbidden: User "alice"/,
    );
    t.match(
      e.message,
      /needs the RBAC permission verb "get" on resource "secrets" in apiGroup "" in namespace "shop"/,
    );
    t.match(e.message, /docs\/cluster\.md/);
  },
);

void t.test('each kind of failure has its code', async (t) => {
  const cases: [Parameters<typeof failureToError>[0], string, RegExp][] = [
    [
      { call: GET_SECRET, status: 401, message: 'HTTP 401' },
      'AGENT_E_CLUSTER_AUTH',
      /user "alice@prod".*401/,
    ],
    [
      { call: GET_SECRET, status: 404, body: '404 page not found', message: '' },
      'AGENT_E_CLUSTER_NOT_FOUND',
      /404 page not found/,
    ],
    [{ call: GET_SECRET, status: 409, message: '' }, 'AGENT_E_CLUSTER_CONFLICT', /conflict/],
    [
      { call: GET_SECRET, status: 422, body: { message: 'Secret "x" is invalid' }, message: '' },
      'AGENT_E_CLUSTER_API',
      /answered 422: Secret "x" is invalid/,
    ],
    [{ call: GET_SECRET, status: 500, message: '' }, 'AGENT_E_CLUSTER_API', /answered 500$/],
    [
      { call: GET_SECRET, errno: 'ECONNREFUSED', message: 'connect ECONNREFUSED' },
      'AGENT_E_CLUSTER_UNREACHABLE',
      /https:\/\/203\.0\.113\.9:6443 \(context "prod"\) is unreachable \(ECONNREFUSED\)/,
    ],
    [
      { call: GET_SECRET, timedOut: true, message: 'aborted' },
      'AGENT_E_CLUSTER_UNREACHABLE',
      /no answer/,
    ],
    [
      {
        call: GET_SECRET,
        errno: 'DEPTH_ZERO_SELF_SIGNED_CERT',
        message: 'self-signed certificate',
      },
      'AGENT_E_CLUSTER_TLS',
      /certificate-authority/,
    ],
    [
      { call: GET_SECRET, errno: 'ERR_TLS_CERT_ALTNAME_INVALID', message: 'altname' },
      'AGENT_E_CLUSTER_TLS',
      /TLS handshake/,
    ],
    [
      { call: GET_SECRET, credentials: true, message: 'gke-gcloud-auth-plugin: not found' },
      'AGENT_E_CLUSTER_AUTH',
      /no credentials for user "alice@prod".*gke-gcloud-auth-plugin/,
    ],
  ];
  for (const [f, code, re] of cases) {
    const e = failureToError(f, TARGET);
    t.equal(
      e.code,
      code,
      `${f.status ?? f.errno ?? (f.timedOut ? 'timeout' : 'credentials')} → ${code}`,
    );
    t.match(e.message, re);
    t.match(e.message, /^cannot get secrets "istio\.vm" in namespace "shop"/, 'names the call');
  }
});

function fakeApi(
  services: Record<string, (round: number) => Service | undefined>,
): KubeApi & { gets: string[] } {
  const gets: string[] = [];
  const count = new Map<string, number>();
  const api = {
    target: TARGET,
    gets,
    getService: (ns: string, name: string) => {
      const k = `${ns}/${name}`;
      gets.push(k);
      const n = (count.get(k) ?? 0) + 1;
      count.set(k, n);
      return Promise.resolve(services[k]?.(n));
    },
  };
  return api as unknown as KubeApi & { gets: string[] };
}

const lb = (ip?: string, ports = [8060]): Service => ({
  spec: { type: 'LoadBalancer', ports: ports.map((port) => ({ port })) },
  status: { loadBalancer: ip ? { ingress: [{ ip }] } : {} },
});

void t.test(
  'waitForIlbs: a progress line per Service per round until each has an address',
  async (t) => {
    const api = fakeApi({
      'istio-system/citadel-ilb': (n) => lb(n >= 3 ? '10.0.0.8' : undefined),
      'kube-system/dns-ilb': (n) => lb(n >= 2 ? '10.0.0.10' : undefined, [53]),
    });
    const clock = new SteppingClock();
    const lines: string[] = [];
    const r = await waitForIlbs(
      api,
      {
        dns: { namespace: 'kube-system', name: 'dns-ilb' },
        citadel: { namespace: 'istio-system', name: 'citadel-ilb' },
      },
      { timeoutMs: 60_000, intervalMs: 5000, clock, progress: (l) => lines.push(l) },
    );
    t.same(r.citadel, {
      role: 'citadel',
      ip: '10.0.0.8',
      port: 8060,
      from: 'istio-system/citadel-ilb',
      given: false,
    });
    t.same(r.dns, {
      role: 'dns',
      ip: '10.0.0.10',
      port: 53,
      from: 'kube-system/dns-ilb',
      given: false,
    });
    t.same(lines, [
      'kube-system/dns-ilb: no load-balancer address yet (waited 0s of 1m0s; next look in 5s)',
      'istio-system/citadel-ilb: no load-balancer address yet (waited 0s of 1m0s; next look in 5s)',
      'istio-system/citadel-ilb: no load-balancer address yet (waited 5s of 1m0s; next look in 5s)',
    ]);
    t.same(clock.slept, [5000, 5000]);
    t.same(
      api.gets,
      [
        'kube-system/dns-ilb',
        'istio-system/citadel-ilb',
        'kube-system/dns-ilb',
        'istio-system/citadel-ilb',
        'istio-system/citadel-ilb',
      ],
      'a found one is not asked again',
    );
  },
);

void t.test('waitForIlbs: gives up after the timeout, naming what is still missing', async (t) => {
  const api = fakeApi({ 'istio-system/citadel-ilb': () => lb() });
  const clock = new SteppingClock();
  await rejectsWithCode(
    t,
    waitForIlbs(
      api,
      { citadel: { namespace: 'istio-system', name: 'citadel-ilb' } },
      { timeoutMs: 12_000, intervalMs: 5000, clock, progress: () => undefined },
    ),
    'AGENT_E_CLUSTER_TIMEOUT',
    /after 12s for istio-system\/citadel-ilb/,
  );
  t.same(clock.slept, [5000, 5000, 2000], 'the last sleep ends at the deadline');
});

void t.test(
  'waitForIlbs: missing, wrong type, hostname: fail at once, with the way out',
  async (t) => {
    const ref = { citadel: { namespace: 'istio-system', name: 'citadel-ilb' } };
    const opts = {
      timeoutMs: 60_000,
      intervalMs: 5000,
      clock: new SteppingClock(),
      progress: () => undefined,
    };
    await rejectsWithCode(
      t,
      waitForIlbs(fakeApi({}), ref, opts),
      'AGENT_E_CLUSTER_NOT_FOUND',
      /mesh-expansion\.yaml.*--citadel-service.*--citadel-ip/,
    );
    await rejectsWithCode(
      t,
      waitForIlbs(
        fakeApi({ 'istio-system/citadel-ilb': () => ({ spec: { type: 'ClusterIP' } }) }),
        ref,
        opts,
      ),
      'AGENT_E_CLUSTER_API',
      /type ClusterIP, so it never gets a load-balancer address/,
    );
    await rejectsWithCode(
      t,
      waitForIlbs(
        fakeApi({
          'istio-system/citadel-ilb': () => ({
            spec: { type: 'LoadBalancer' },
            status: { loadBalancer: { ingress: [{ hostname: 'x.elb.example' }] } },
          }),
        }),
        ref,
        opts,
      ),
      'AGENT_E_CLUSTER_API',
      /hostname x\.elb\.example, not an IP address/,
    );
  },
);
