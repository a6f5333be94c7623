// What a `cluster` command line names, checked before any cluster call: each check says what is
// wrong with the argument named, or nothing when the text is fine as it is.
import t from 'tap';
import {
  DNS_1035_LABEL,
  DNS_1123_LABEL,
  citadelAddressProblem,
  clusterDomainProblem,
  inboundPortsProblem,
  ipProblem,
  isSshDestination,
  parseKeyValues,
  serviceNameProblem,
  vmNameProblem,
} from '../../src/cluster/inputs';

void t.test('an IP address, strictly: no leading zero, zone, prefix or name', async (t) => {
  for (const ok of ['10.0.0.1', '0.0.0.0', 'fd00::1', '::1', '2001:db8::8:800:200c:417a'])
    t.equal(ipProblem('IP', ok), undefined, ok);
  for (const bad of ['10.0.0.01', '010.0.0.1', 'fe80::1%eth0', '10.0.0.0/8', 'vm-1', '', '1.2.3'])
    t.equal(ipProblem('IP', bad), `IP "${bad}" is not an IP address`, bad);
  t.match(ipProblem('--pilot-ip', 'x'), /^--pilot-ip "x"/, 'the argument is named');
});

void t.test("CITADEL_ADDRESS: host:port as the agent's configuration takes it", async (t) => {
  for (const ok of ['citadel.example:8060', '10.0.0.8:8060', '[fd00::8]:8060', 'c_1:1'])
    t.equal(citadelAddressProblem('--citadel-address', ok), undefined, ok);
  for (const bad of ['10.0.0.8', 'citadel', '10.0.0.8:0', 'c:65536', '[10.0.0.8]:8060', 'a b:1'])
    t.equal(
      citadelAddressProblem('--citadel-address', bad),
      `--citadel-address "${bad}" is not HOST:PORT`,
      bad,
    );
});

void t.test('VM names: a folder and POD_NAME, at most 63', async (t) => {
  for (const ok of ['vm-1', 'VM_1.prod', 'a', 'a'.repeat(63), '0vm'])
    t.equal(vmNameProblem(ok), undefined, ok);
  for (const bad of ['vm 1', '-vm', '.vm', '', 'a'.repeat(64), 'vm/1', '../x'])
    t.match(vmNameProblem(bad), `VM_NAME "${bad}" must be letters, digits`, bad);
});

void t.test('Service names are DNS-1035 labels; other names DNS-1123 labels', async (t) => {
  for (const ok of ['svc', 'my-svc-2', 'a'.repeat(63)]) t.equal(serviceNameProblem(ok), undefined);
  for (const bad of ['Svc', '2svc', 'svc-', 'my_svc', '', 'a'.repeat(64)])
    t.equal(
      serviceNameProblem(bad),
      `SERVICE "${bad}" is not a Service name (lower-case DNS label)`,
    );
  t.ok(
    DNS_1123_LABEL.test('2svc') && !DNS_1035_LABEL.test('2svc'),
    'a 1123 label may start with a digit',
  );
});

void t.test('a cluster domain', async (t) => {
  for (const ok of ['cluster.local', 'c1.example.com', 'x'])
    t.equal(clusterDomainProblem('D', ok), undefined);
  for (const bad of ['Cluster.local', '.local', 'local.', '', 'a b'])
    t.equal(
      clusterDomainProblem('--cluster-domain', bad),
      `--cluster-domain "${bad}" is not a domain`,
    );
});

void t.test('an ssh destination: [USER@]HOST, nothing ssh would read otherwise', async (t) => {
  for (const ok of ['vm-1', 'admin@vm-1', 'root@10.0.0.5', 'u@[fd00::5]', 'vm.example.com'])
    t.ok(isSshDestination(ok), ok);
  for (const bad of ['', '-oProxyCommand=x', 'a b', 'u@', '@vm', 'vm;rm', 'u@v@w'])
    t.notOk(isSshDestination(bad), bad);
});

void t.test('ISTIO_INBOUND_PORTS: numbers separated by commas, or *', async (t) => {
  for (const ok of ['8080', '8080,9090', '*'])
    t.equal(inboundPortsProblem('--ports', ok), undefined);
  for (const bad of ['', '8080,', '*,80', 'http', '8080 9090', '123456'])
    t.equal(
      inboundPortsProblem('--ports', bad),
      `--ports "${bad}" is not a list of port numbers (8080,9090) or *`,
    );
});

void t.test('labels and annotations: K=V, several per item, a bare K, the last wins', async (t) => {
  t.same(parseKeyValues('-l', []), {});
  t.same(parseKeyValues('-l', ['app=web,tier=front', 'team=', 'flag', 'app=api']), {
    app: 'api',
    tier: 'front',
    team: '',
    flag: '',
  });
  t.same(parseKeyValues('-a', ['example.com/owner=a=b', ',,']), { 'example.com/owner': 'a=b' });
  t.equal(
    parseKeyValues('-l', ['ok=1', 'bad key=2']),
    '-l "bad key=2": "bad key" is not a label or annotation key',
  );
  t.equal(parseKeyValues('-a', ['=x']), '-a "=x": "" is not a label or annotation key');
  t.equal(
    parseKeyValues('-l', ['Example.com/a=1']),
    '-l "Example.com/a=1": "Example.com/a" is not a label or annotation key',
  );
});
