// The Kubernetes client against the kube-apiserver test double over real TLS: kubeconfig rules,
// the three ways to authenticate, and what a user reads when the cluster is away or says no.
import t from 'tap';
import { tmpDir } from '../helpers/tmp';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { connectKube } from '../../src/cluster/kube';
import { kubeCall } from '../../src/cluster/errors';
import { KubeApiServer } from '../doubles/kube-apiserver';
import { rejectsWithCode } from '../helpers/agent-error';
import { apiServer, cluster, istioSecret } from '../helpers/cluster';

const SET = { certChainPem: 'c', keyPem: 'k', rootPem: 'r' };

void t.test(
  'bearer token, client certificate, exec plugin: each is who the server says',
  async (t) => {
    const { server, dir } = await apiServer(t, {
      tokens: { 'tok-1': { name: 'alice', groups: [] } },
    });
    server.put('secrets', istioSecret('default', 'vm', SET));

    const byToken = await connectKube({
      kubeconfig: server.kubeconfig(dir, { token: 'tok-1' }, { file: 'k1' }),
      env: {},
    });
    t.ok(await byToken.getSecret('default', 'istio.vm'));
    t.equal(server.requests.at(-1)!.user, 'alice', 'token → alice');

    const cert = await server.clientCertificate('bob', ['devs']);
    const byCert = await connectKube({
      kubeconfig: server.kubeconfig(dir, cert, { file: 'k2' }),
      env: {},
    });
    t.ok(await byCert.getSecret('default', 'istio.vm'));
    t.equal(server.requests.at(-1)!.user, 'bob', 'client certificate → bob (CN)');

    // An exec credential plugin, as GKE's and EKS's kubeconfigs use.
    const plugin = path.join(dir, 'plugin.js');
    writeFileSync(
      plugin,
      `process.stdout.write(JSON.stringify({apiVersion:'client.authentication.k8s.io/v1',kind:'ExecCredential',status:{token:'tok-1'}}));\n`,
    );
    const byExec = await connectKube({
      kubeconfig: server.kubeconfig(
        dir,
        { exec: { command: process.execPath, args: [plugin] } },
        { file: 'k3' },
      ),
      env: {},
    });
    t.ok(await byExec.getSecret('default', 'istio.vm'));
    t.equal(server.requests.at(-1)!.user, 'alice', 'the plugin’s token → alice');
    t.equal(byExec.target.context, 'double');
  },
);

void t.test(
  '401, a failing plugin, a wrong CA, nobody listening: each named, with its code',
  async (t) => {
    const { server, dir } = await apiServer(t);
    const secret = { kubeconfig: '', args: ['certs', 'vm', '-o', path.join(dir, 'out')] };

    secret.kubeconfig = server.kubeconfig(
      dir,
      { token: 'nobody-knows-this' },
      { file: 'bad-token' },
    );
    let r = await cluster([...secret.args, '--kubeconfig', secret.kubeconfig]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /cannot get secrets "istio\.vm" in namespace "default": .* did not accept the credentials of user "double-user" \(401 Unauthorized\).*\[AGENT_E_CLUSTER_AUTH\]/,
    );

    const failing = server.kubeconfig(
      dir,
      { exec: { command: path.join(dir, 'no-such-plugin'), args: [] } },
      { file: 'bad-exec' },
    );
    r = await cluster([...secret.args, '--kubeconfig', failing]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /no credentials for user "double-user" of context "double".*\[AGENT_E_CLUSTER_AUTH\]/,
    );

    const other = await KubeApiServer.start();
    t.teardown(() => other.close());
    const wrongCa = server.kubeconfig(
      dir,
      { token: 'admin-token' },
      { file: 'wrong-ca', caPem: other.caPem },
    );
    r = await cluster([...secret.args, '--kubeconfig', wrongCa]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /the TLS handshake with the API server https:\/\/127\.0\.0\.1:\d+ \(context "double"\) failed.*\[AGENT_E_CLUSTER_TLS\]/,
    );

    // A port nobody listens on: take one, then free it.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => {
          resolve(p);
        });
      });
    });
    const closed = path.join(dir, 'closed');
    writeFileSync(
      closed,
      (await import('node:fs'))
        .readFileSync(server.kubeconfig(dir, { token: 'x' }, { file: 'tmp' }), 'utf8')
        .replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`),
    );
    r = await cluster([...secret.args, '--kubeconfig', closed]);
    t.equal(r.code, 1);
    t.match(
      r.err,
      new RegExp(
        `https://127\\.0\\.0\\.1:${port} \\(context "double"\\) is unreachable \\(ECONNREFUSED\\).*\\[AGENT_E_CLUSTER_UNREACHABLE\\]`,
      ),
    );
  },
);

void t.test('403 on each kind of call names the verb, the object and the permission', async (t) => {
  const { server, dir } = await apiServer(t, {
    tokens: { 'viewer-token': { name: 'viewer', groups: [] } },
    rules: { viewer: [{ verbs: ['get'], apiGroups: [''], resources: ['services'] }] },
  });
  server.put('secrets', istioSecret('shop', 'vm', SET));
  const kc = server.kubeconfig(dir, { token: 'viewer-token' }, { file: 'viewer' });
  const api = await connectKube({ kubeconfig: kc, env: {} });
  await rejectsWithCode(
    t,
    kubeCall(api.target, () => api.getSecret('shop', 'istio.vm')),
    'AGENT_E_CLUSTER_FORBIDDEN',
    /cannot get secrets "istio\.vm" in namespace "shop": forbidden \(403\): secrets "istio\.vm" is forbidden: User "viewer" cannot get resource "secrets" in API group "" in the namespace "shop"; the user needs the RBAC permission verb "get" on resource "secrets" in apiGroup "" in namespace "shop"/,
  );
  await rejectsWithCode(
    t,
    kubeCall(api.target, () => api.listEndpointSlices('shop', 'a=b')),
    'AGENT_E_CLUSTER_FORBIDDEN',
    /cannot list endpointslices\.discovery\.k8s\.io in namespace "shop".*verb "list" on resource "endpointslices" in apiGroup "discovery\.k8s\.io"/,
  );
  await rejectsWithCode(
    t,
    kubeCall(api.target, () => api.listServiceCidrs()),
    'AGENT_E_CLUSTER_FORBIDDEN',
    /at the cluster scope.*ClusterRole/,
  );
  t.equal(
    await api.getService('shop', 'missing'),
    undefined,
    'allowed, absent: undefined, no error',
  );
});

void t.test(
  'kubeconfig rules: --kubeconfig, KUBECONFIG (merged), ~/.kube/config, --context',
  async (t) => {
    const { server, dir } = await apiServer(t);
    const a = server.kubeconfig(
      dir,
      { token: 'admin-token' },
      { file: 'a', context: 'ctx-a', namespace: 'team-a' },
    );
    const b = server.kubeconfig(dir, { token: 'admin-token' }, { file: 'b', context: 'ctx-b' });

    let api = await connectKube({ env: { KUBECONFIG: `${path.join(dir, 'missing')}:${a}:${b}` } });
    t.equal(api.target.context, 'ctx-a', 'the first existing file sets the current context');
    t.equal(api.target.namespace, 'team-a', "the context's namespace");
    t.equal(api.target.source, `${a}:${b}`);
    api = await connectKube({ env: { KUBECONFIG: `${a}:${b}` }, context: 'ctx-b' });
    t.equal(api.target.context, 'ctx-b', '--context picks a merged one');
    t.equal(api.target.namespace, 'default');

    const home = tmpDir(t, 'cluster-home-', { mode: 0o700 });
    mkdirSync(path.join(home, '.kube'));
    writeFileSync(path.join(home, '.kube', 'config'), (await import('node:fs')).readFileSync(b));
    api = await connectKube({ env: { HOME: home } });
    t.equal(api.target.source, path.join(home, '.kube', 'config'));
    api = await connectKube({ kubeconfig: a, env: { KUBECONFIG: b, HOME: home } });
    t.equal(api.target.context, 'ctx-a', '--kubeconfig wins over KUBECONFIG');

    await rejectsWithCode(
      t,
      connectKube({ env: { HOME: path.join(dir, 'nohome') } }),
      'AGENT_E_CLUSTER_KUBECONFIG',
      /no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG/,
    );
    await rejectsWithCode(
      t,
      connectKube({ kubeconfig: a, context: 'nope', env: {} }),
      'AGENT_E_CLUSTER_KUBECONFIG',
      /has no context "nope"; it has: ctx-a/,
    );
    await rejectsWithCode(
      t,
      connectKube({ kubeconfig: path.join(dir, 'missing'), env: {} }),
      'AGENT_E_CLUSTER_KUBECONFIG',
      /cannot load kubeconfig .*missing: ENOENT/,
    );
    const unreadable = path.join(dir, 'unreadable');
    writeFileSync(unreadable, 'clusters: [');
    chmodSync(unreadable, 0o600);
    await rejectsWithCode(
      t,
      connectKube({ kubeconfig: unreadable, env: {} }),
      'AGENT_E_CLUSTER_KUBECONFIG',
      /cannot load kubeconfig/,
    );

    const r = await cluster(['env', '--kubeconfig', path.join(dir, 'missing')]);
    t.equal(r.code, 78, 'a kubeconfig problem is a configuration error');
    t.match(r.err, /\[AGENT_E_CLUSTER_KUBECONFIG\]/);
  },
);

void t.test(
  'usage: unknown verb, missing arguments, bad flags are exit 2 with the usage',
  async (t) => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown verb "frobnicate"/],
      [['certs'], /SERVICE_ACCOUNT is required/],
      [['certs', 'vm'], /-o DIR is required/],
      [['register', 'svc', '10.0.0.1'], /at least one \[name:\]port/],
      [['register', 'svc', '10.0.0.01', '80'], /IP "10\.0\.0\.01" is not an IP address/],
      [['register', 'Svc', '10.0.0.1', '80'], /not a Service name/],
      [['env', '--cp-auth', 'SOMETIMES'], /--cp-auth must be MUTUAL_TLS or NONE/],
      [['setup', 'vm-1'], /--host \[USER@\]HOST is required/],
      [['bundle', 'vm 1', '-o', 'x'], /VM_NAME "vm 1"/],
      [['env', '--bogus'], /unknown option --bogus/],
    ];
    for (const [args, re] of cases) {
      const r = await cluster(args);
      t.equal(r.code, 2, args.join(' '));
      t.match(r.err, re);
    }
    const help = await cluster(['register', '--help']);
    t.equal(help.code, 0);
    t.match(help.out, /^Usage: istio-node-agent cluster register SERVICE IP \[name:\]port/);
    const top = await cluster([]);
    t.equal(top.code, 2);
    t.match(top.out, /env\s+cluster\.env for every VM/);
  },
);
