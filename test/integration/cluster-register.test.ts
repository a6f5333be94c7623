// `cluster register` / `deregister` against the kube-apiserver double: the selector-less Service,
// 1.0's subset merge in its Endpoints, the EndpointSlices beside them, and writes by others.
import t from 'tap';
import { apiServer, cluster } from '../helpers/cluster';
import type { KubeObject } from '../doubles/kube-apiserver';

interface Subset {
  addresses?: { ip: string }[];
  ports?: { name: string; port: number }[];
}

const subsets = (o: KubeObject | undefined): { ips: string[]; ports: string[] }[] =>
  ((o?.subsets ?? []) as Subset[]).map((s) => ({
    ips: (s.addresses ?? []).map((a) => a.ip),
    ports: (s.ports ?? []).map((p) => `${p.name}:${p.port}`),
  }));

interface Slice {
  metadata: { name: string; labels: Record<string, string>; ownerReferences?: { uid: string }[] };
  addressType: string;
  endpoints: { addresses: string[]; conditions: { ready: boolean } }[];
  ports: { name: string; port: number }[];
}

const slices = (objs: KubeObject[]): { family: string; ips: string[]; ports: string[] }[] =>
  (objs as unknown as Slice[])
    .map((s) => ({
      family: s.addressType,
      ips: s.endpoints.flatMap((e) => e.addresses),
      ports: s.ports.map((p) => `${p.name}:${p.port}`),
    }))
    .sort(
      (a, b) => a.ports.join().localeCompare(b.ports.join()) || a.family.localeCompare(b.family),
    );

void t.test(
  'register: creates the Service, Endpoints and a slice; more VMs join; deregister',
  async (t) => {
    const { server, kubeconfig } = await apiServer(t);
    const kc = ['--kubeconfig', kubeconfig, '-n', 'shop'];
    const sa = ['-s', 'reviews-sa'];
    let r = await cluster([
      'register',
      'reviews',
      '10.0.0.1',
      '9080',
      'grpc:9090',
      '-l',
      'app=reviews,tier=vm',
      '-a',
      'team=books',
      '-s',
      'reviews-sa',
      ...kc,
    ]);
    t.equal(r.code, 0, r.err);
    t.match(
      r.out,
      /registered 10\.0\.0\.1 in shop\/reviews\n {2}Service: created \(ports 9080:9080, grpc:9090\)\n {2}Endpoints: created; addresses now: 10\.0\.0\.1\n {2}EndpointSlices: created reviews-vm-ipv4-[0-9a-f]{8}\n/,
    );
    const svc = server.object('services', 'shop', 'reviews')!;
    const spec = svc.spec as {
      selector?: unknown;
      ports: { name: string; port: number; targetPort: number }[];
      clusterIP: string;
    };
    t.notOk(spec.selector, 'selector-less');
    t.same(
      spec.ports.map((p) => [p.name, p.port, p.targetPort]),
      [
        ['9080', 9080, 9080],
        ['grpc', 9090, 9090],
      ],
    );
    t.same(svc.metadata.labels, { app: 'reviews', tier: 'vm' });
    t.same(svc.metadata.annotations, {
      team: 'books',
      'alpha.istio.io/kubernetes-serviceaccounts': 'reviews-sa',
    });
    const ep = server.object('endpoints', 'shop', 'reviews')!;
    t.equal(
      ep.metadata.labels!['endpointslice.kubernetes.io/skip-mirror'],
      'true',
      'Kubernetes does not mirror it: our slices stand',
    );
    t.same(subsets(ep), [{ ips: ['10.0.0.1'], ports: ['9080:9080', 'grpc:9090'] }]);
    const [slice] = server.objects('endpointslices', 'shop') as unknown as Slice[];
    t.same(slice!.metadata.labels, {
      'kubernetes.io/service-name': 'reviews',
      'endpointslice.kubernetes.io/managed-by': 'istio-node-agent',
    });
    t.equal(slice!.metadata.ownerReferences![0]!.uid, svc.metadata.uid, 'owned by the Service');
    t.same(slice!.endpoints, [
      { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false } },
    ]);

    // A second VM with the same ports joins the subset; an IPv6 one gets its own slice; other ports a subset.
    r = await cluster(['register', 'reviews', '10.0.0.2', '9080', 'grpc:9090', ...sa, ...kc]);
    t.match(
      r.out,
      /Service: unchanged.*\n {2}Endpoints: updated; addresses now: 10\.0\.0\.1, 10\.0\.0\.2\n {2}EndpointSlices: updated/,
    );
    r = await cluster(['register', 'reviews', 'fd00::3', '9080', 'grpc:9090', ...sa, ...kc]);
    t.equal(r.code, 0, r.err);
    r = await cluster(['register', 'reviews', '10.0.0.4', 'metrics:9100', ...sa, ...kc]);
    t.match(r.out, /Service: updated \(ports metrics:9100\)/, 'a port the Service lacked is added');
    t.same(subsets(server.object('endpoints', 'shop', 'reviews')), [
      { ips: ['10.0.0.1', '10.0.0.2', 'fd00::3'], ports: ['9080:9080', 'grpc:9090'] },
      { ips: ['10.0.0.4'], ports: ['metrics:9100'] },
    ]);
    t.same(slices(server.objects('endpointslices', 'shop')), [
      { family: 'IPv4', ips: ['10.0.0.1', '10.0.0.2'], ports: ['9080:9080', 'grpc:9090'] },
      { family: 'IPv6', ips: ['fd00::3'], ports: ['9080:9080', 'grpc:9090'] },
      { family: 'IPv4', ips: ['10.0.0.4'], ports: ['metrics:9100'] },
    ]);

    // Again: nothing to write.
    const writes = server.writes().length;
    r = await cluster(['register', 'reviews', '10.0.0.2', '9080', 'grpc:9090', ...sa, ...kc]);
    t.match(
      r.out,
      /Service: unchanged.*\n {2}Endpoints: unchanged.*\n {2}EndpointSlices: unchanged/,
    );
    t.equal(server.writes().length, writes, 'idempotent: no write at all');

    // Another service account joins the Service's annotation.
    r = await cluster([
      'register',
      'reviews',
      '10.0.0.5',
      '9080',
      'grpc:9090',
      '-s',
      'other-sa',
      ...kc,
    ]);
    t.equal(
      server.object('services', 'shop', 'reviews')!.metadata.annotations![
        'alpha.istio.io/kubernetes-serviceaccounts'
      ],
      'reviews-sa,other-sa',
    );

    // Deregister: the address goes, subsets and slices left empty go, the Service stays.
    r = await cluster(['deregister', 'reviews', '10.0.0.4', ...kc]);
    t.equal(r.code, 0, r.err);
    t.match(
      r.out,
      /deregistered 10\.0\.0\.4 from shop\/reviews\n.*\n {2}Endpoints: updated.*\n {2}EndpointSlices: .*deleted reviews-vm-ipv4-/,
    );
    t.same(subsets(server.object('endpoints', 'shop', 'reviews')).length, 1);
    t.equal(server.objects('endpointslices', 'shop').length, 2);
    r = await cluster(['deregister', 'reviews', '10.0.0.4', ...kc]);
    t.equal(r.code, 0);
    t.match(r.out, /10\.0\.0\.4 is not registered in shop\/reviews: nothing to do/);
    for (const ip of ['10.0.0.1', '10.0.0.2', 'fd00::3', '10.0.0.5'])
      await cluster(['deregister', 'reviews', ip, ...kc]);
    t.same(subsets(server.object('endpoints', 'shop', 'reviews')), [], 'no subsets left');
    t.same(server.objects('endpointslices', 'shop'), [], 'no slices left');
    t.ok(server.object('services', 'shop', 'reviews'), 'the Service stays (as 1.0)');
  },
);

void t.test(
  'register: a concurrent writer gets a 409 retry, never an overwrite of its change',
  async (t) => {
    const { server, kubeconfig } = await apiServer(t);
    const kc = ['--kubeconfig', kubeconfig, '-n', 'shop'];
    await cluster(['register', 'ratings', '10.0.1.1', '8080', ...kc]);
    // Someone else adds 10.0.1.99 just before each of our next two Endpoints updates.
    let n = 0;
    server.interfere(
      'endpoints',
      'shop',
      'ratings',
      (o) => {
        const ss = o.subsets as Subset[];
        ss[0]!.addresses!.push({ ip: `10.0.1.${99 - n++}` });
      },
      2,
    );
    const r = await cluster(['register', 'ratings', '10.0.1.2', '8080', ...kc, '--json']);
    t.equal(r.code, 0, r.err);
    const res = JSON.parse(r.out) as { conflicts: number; addresses: string[] };
    t.equal(res.conflicts, 2, 'two 409s, each retried with the fresh object');
    t.same(
      res.addresses,
      ['10.0.1.1', '10.0.1.99', '10.0.1.98', '10.0.1.2'],
      "the others' addresses are kept",
    );
    t.same(
      slices(server.objects('endpointslices', 'shop'))[0]!.ips,
      ['10.0.1.1', '10.0.1.99', '10.0.1.98', '10.0.1.2'],
      'and in the slice',
    );
    const conflicts = server.requests.filter((q) => q.status === 409);
    t.equal(conflicts.length, 2);
    t.ok(
      server.requests
        .filter((q) => q.verb === 'update')
        .every((q) => (q.body as KubeObject).metadata.resourceVersion),
      'every update carries a resourceVersion',
    );

    // One that never stops: the command gives up and says to run it again.
    server.interfere(
      'endpoints',
      'shop',
      'ratings',
      (o) => {
        (o.subsets as Subset[])[0]!.addresses!.push({ ip: `10.0.2.${n++}` });
      },
      100,
    );
    const busy = await cluster(['register', 'ratings', '10.0.1.3', '8080', ...kc]);
    t.equal(busy.code, 1);
    t.match(
      busy.err,
      /register 10\.0\.1\.3 in shop\/ratings: the object kept changing under us \(8 tries, each with its fresh version\); run the command again \[AGENT_E_CLUSTER_CONFLICT\]/,
    );
  },
);

void t.test(
  'register: Endpoints written meanwhile by someone else end up in the slices too',
  async (t) => {
    const { server, kubeconfig } = await apiServer(t);
    const kc = ['--kubeconfig', kubeconfig, '-n', 'shop'];
    await cluster(['register', 'details', '10.0.3.1', '80', ...kc]);
    // Right after our slice write, another registration lands in the Endpoints.
    let done = false;
    server.onRequest((q) => {
      if (!done && q.resource === 'endpointslices' && q.verb === 'update' && q.status === 200) {
        done = true;
        const ep = server.object('endpoints', 'shop', 'details')!;
        (ep.subsets as Subset[])[0]!.addresses!.push({ ip: '10.0.3.50' });
        server.put('endpoints', ep);
      }
    });
    const r = await cluster(['register', 'details', '10.0.3.2', '80', ...kc]);
    t.equal(r.code, 0, r.err);
    t.same(
      slices(server.objects('endpointslices', 'shop'))[0]!.ips,
      ['10.0.3.1', '10.0.3.2', '10.0.3.50'],
      'the slice was written again from the fresh Endpoints',
    );
  },
);

void t.test('register refuses what Kubernetes manages, and names clash', async (t) => {
  const { server, kubeconfig } = await apiServer(t);
  const kc = ['--kubeconfig', kubeconfig, '-n', 'shop'];
  server.put('services', {
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }] },
  });
  let r = await cluster(['register', 'web', '10.0.0.1', '80', ...kc]);
  t.equal(r.code, 1);
  t.match(
    r.err,
    /Service shop\/web has a selector \(app=web\): Kubernetes manages its endpoints.*\[AGENT_E_CLUSTER_MANAGED\]/,
  );
  r = await cluster(['deregister', 'web', '10.0.0.1', ...kc]);
  t.match(r.err, /\[AGENT_E_CLUSTER_MANAGED\]/);
  server.put('services', {
    metadata: { name: 'legacy', namespace: 'shop' },
    spec: { ports: [{ name: 'web', port: 80 }] },
  });
  r = await cluster(['register', 'legacy', '10.0.0.1', 'http:80', ...kc]);
  t.equal(r.code, 2);
  t.match(
    r.err,
    /Service shop\/legacy: the Service names port 80 "web", not "http"; use web:80 or leave the name out/,
  );
  r = await cluster(['register', 'legacy', '10.0.0.1', '80', ...kc]);
  t.equal(r.code, 0, 'a bare port takes the Service’s name');
  t.same(subsets(server.object('endpoints', 'shop', 'legacy')), [
    { ips: ['10.0.0.1'], ports: ['web:80'] },
  ]);
  const legacy = server.object('services', 'shop', 'legacy')!;
  t.same(
    (legacy.spec as { ports: unknown[] }).ports,
    [{ name: 'web', port: 80 }],
    'its ports as they were',
  );
  t.equal(
    legacy.metadata.annotations!['alpha.istio.io/kubernetes-serviceaccounts'],
    'default',
    'the account added',
  );
});

void t.test('register with a Role that lacks the slices: the permission is named', async (t) => {
  const { server, dir } = await apiServer(t, {
    tokens: { 'old-role': { name: 'old-role', groups: [] } },
    rules: {
      'old-role': [
        {
          verbs: ['get', 'create', 'update'],
          apiGroups: [''],
          resources: ['services', 'endpoints'],
        },
      ],
    },
  });
  const kc = server.kubeconfig(dir, { token: 'old-role' }, { file: 'old', namespace: 'shop' });
  const r = await cluster(['register', 'pay', '10.0.0.1', '443', '--kubeconfig', kc]);
  t.equal(r.code, 1);
  t.match(
    r.err,
    /cannot list endpointslices\.discovery\.k8s\.io in namespace "shop": forbidden \(403\).*needs the RBAC permission verb "list" on resource "endpointslices" in apiGroup "discovery\.k8s\.io" in namespace "shop"/,
  );
});
