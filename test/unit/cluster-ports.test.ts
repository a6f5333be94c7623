import t from 'tap';
import { parsePortSpec, parsePortSpecs, planPorts, portKey } from '../../src/cluster/ports';

void t.test(
  "a bare port gets Istio 1.0's name: 80/8080 http, 443 https, 3306 mysql, else its number",
  async (t) => {
    const names = ['80', '8080', '443', '3306', '9090', '15011'].map((s) => parsePortSpec(s));
    t.same(names, [
      { name: 'http', port: 80, explicit: false },
      { name: 'http', port: 8080, explicit: false },
      { name: 'https', port: 443, explicit: false },
      { name: 'mysql', port: 3306, explicit: false },
      { name: '9090', port: 9090, explicit: false },
      { name: '15011', port: 15011, explicit: false },
    ]);
  },
);

void t.test('name:port keeps the name; an empty name is a bare port', async (t) => {
  t.same(parsePortSpec('grpc-web:9090'), { name: 'grpc-web', port: 9090, explicit: true });
  t.same(parsePortSpec('http-alt:80'), { name: 'http-alt', port: 80, explicit: true });
  t.same(parsePortSpec(':443'), { name: 'https', port: 443, explicit: false });
});

void t.test('bad ports and names are refused with the argument named', async (t) => {
  for (const bad of ['0', '65536', 'http', 'x:', '80a', '-1', '1.5', '']) {
    const r = parsePortSpec(bad);
    t.type(r, 'string', `"${bad}" refused`);
    t.match(r, `"${bad}"`);
  }
  t.match(parsePortSpec('HTTP:80'), /DNS label/, 'upper case is not a Kubernetes port name');
  t.match(parsePortSpec('a_b:80'), /DNS label/);
  t.match(parsePortSpec(`${'a'.repeat(64)}:80`), /DNS label/);
});

void t.test('a list: duplicates (number or name) and an empty list are refused', async (t) => {
  t.same(parsePortSpecs(['80', 'grpc:9090']), [
    { name: 'http', port: 80, explicit: false },
    { name: 'grpc', port: 9090, explicit: true },
  ]);
  t.match(parsePortSpecs(['80', 'web:80']), /port 80 is given twice/);
  t.match(parsePortSpecs(['80', '8080']), /two ports are named "http"/, '1.0 named both http');
  t.match(parsePortSpecs([]), /at least one/);
});

void t.test('planPorts: fitting the request to an existing Service', async (t) => {
  const svc = [
    { name: 'web', port: 80 },
    { name: 'grpc', port: 9090 },
  ];
  const req = (...s: string[]) =>
    parsePortSpecs(s) as Exclude<ReturnType<typeof parsePortSpecs>, string>;
  t.same(
    planPorts(svc, req('80', '9090')),
    {
      ports: [
        { name: 'web', port: 80 },
        { name: 'grpc', port: 9090 },
      ],
      addToService: [],
    },
    "a bare port takes the Service's name, so endpoint and Service ports pair by name",
  );
  t.same(
    planPorts(svc, req('80', 'metrics:9100')),
    {
      ports: [
        { name: 'web', port: 80 },
        { name: 'metrics', port: 9100 },
      ],
      addToService: [{ name: 'metrics', port: 9100 }],
    },
    'a port the Service lacks is added to it',
  );
  t.match(
    planPorts(svc, req('http:80')),
    /names port 80 "web", not "http"/,
    'an explicit different name is an error',
  );
  t.match(
    planPorts(svc, req('web:8080')),
    /already has a port named "web"/,
    'a name taken by another port',
  );
  t.same(planPorts([], req('443')), {
    ports: [{ name: 'https', port: 443 }],
    addToService: [{ name: 'https', port: 443 }],
  });
});

void t.test('portKey: the numbers, sorted (1.0 matched subsets on the numbers only)', async (t) => {
  t.equal(portKey([{ port: 9090 }, { port: 80 }]), '80,9090');
  t.equal(portKey([{ port: 80 }, { port: 9090 }]), portKey([{ port: 9090 }, { port: 80 }]));
  t.equal(portKey([]), '');
});
