import t from 'tap';
import {
  bootstrapText,
  certFiles,
  isRevFile,
  renderBootstrap,
  revFileName,
  XDS_CLUSTER,
} from '../../src/sidecar/bootstrap';
import {
  controlPlaneNamespace,
  pilotSan,
  pilotXdsPort,
  serviceNode,
  splitHostPort,
} from '../../src/sidecar/plan';

// The bootstrap as the supervisor builds it for PILOT_ADDRESS=istio-pilot.istio-system:15011,
// ISTIO_CP_AUTH=MUTUAL_TLS, CERTS_DIR=/etc/certs; checked field by field below.
function mtlsInput() {
  const pilot = splitHostPort('istio-pilot.istio-system:15011');
  const ns = controlPlaneNamespace(pilot.host, 'bookinfo', 'istio-system');
  return {
    nodeId: serviceNode('10.150.0.5', 'vm-1', 'bookinfo'),
    cluster: 'ratings',
    metadata: { NETWORK: 'vpc-1' },
    adminPort: 15000,
    pilotHost: pilot.host,
    pilotPort: pilotXdsPort('MUTUAL_TLS'),
    tls: { ...certFiles('/etc/certs'), subjectAltNames: [pilotSan(ns)] },
  };
}

interface Json {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [k: string]: any;
}

void t.test('bootstrap: node, admin, ADS over the xds-grpc cluster', (t) => {
  const b = JSON.parse(bootstrapText(mtlsInput())) as Json;
  t.same(b.node, {
    id: 'sidecar~10.150.0.5~vm-1.bookinfo~bookinfo.svc.cluster.local',
    cluster: 'ratings',
    metadata: { NETWORK: 'vpc-1', istio: 'sidecar' },
  });
  t.same(b.admin.address, { socket_address: { address: '127.0.0.1', port_value: 15000 } });
  t.equal(b.admin.access_log_path, '/dev/null');
  t.same(b.dynamic_resources.lds_config, { ads: {} });
  t.same(b.dynamic_resources.cds_config, { ads: {} });
  t.equal(b.dynamic_resources.ads_config.api_type, 'GRPC');
  t.same(b.dynamic_resources.ads_config.grpc_services, [
    { envoy_grpc: { cluster_name: 'xds-grpc' } },
  ]);
  t.equal(b.static_resources.clusters.length, 1);
  const xds = b.static_resources.clusters[0] as Json;
  t.equal(xds.name, XDS_CLUSTER);
  t.equal(xds.type, 'STRICT_DNS');
  t.same(xds.hosts, [
    { socket_address: { address: 'istio-pilot.istio-system', port_value: 15011 } },
  ]);
  t.same(xds.http2_protocol_options, {});
  t.end();
});

void t.test('bootstrap: mTLS to Pilot with the cert set and Pilot SAN', (t) => {
  const b = JSON.parse(bootstrapText(mtlsInput())) as Json;
  const tls = b.static_resources.clusters[0].tls_context.common_tls_context as Json;
  t.same(tls.alpn_protocols, ['h2']);
  t.same(tls.tls_certificates, [
    {
      certificate_chain: { filename: '/etc/certs/cert-chain.pem' },
      private_key: { filename: '/etc/certs/key.pem' },
    },
  ]);
  t.same(tls.validation_context.trusted_ca, { filename: '/etc/certs/root-cert.pem' });
  t.same(tls.validation_context.verify_subject_alt_name, [
    'spiffe://cluster.local/ns/istio-system/sa/istio-pilot-service-account',
  ]);
  t.end();
});

void t.test('bootstrap: plaintext to 15010 without TLS under NONE; IPv6 Pilot', (t) => {
  const b = renderBootstrap({
    ...mtlsInput(),
    pilotHost: splitHostPort('[fd00::10]:15011').host,
    pilotPort: pilotXdsPort('NONE'),
    tls: undefined,
    adminPort: 15123,
    metadata: {},
  }) as Json;
  const xds = b.static_resources.clusters[0] as Json;
  t.same(xds.hosts, [{ socket_address: { address: 'fd00::10', port_value: 15010 } }]);
  t.notOk('tls_context' in xds);
  t.equal(b.admin.address.socket_address.port_value, 15123);
  t.same(b.node.metadata, { istio: 'sidecar' });
  t.end();
});

void t.test(
  'bootstrap: metadata values are JSON-escaped (1.0 pasted them into a template)',
  (t) => {
    const text = bootstrapText({ ...mtlsInput(), metadata: { LABELS: '{"app":"a\\"b"}' } });
    const b = JSON.parse(text) as Json;
    t.equal(b.node.metadata.LABELS, '{"app":"a\\"b"}');
    t.end();
  },
);

void t.test('rev file names', (t) => {
  t.equal(revFileName(0), 'envoy-rev0.json');
  t.equal(revFileName(12), 'envoy-rev12.json');
  t.ok(isRevFile('envoy-rev3.json'));
  t.ok(isRevFile('.envoy-rev3.json.a1b2c3d4e5f6.tmp'));
  t.notOk(isRevFile('envoy_bootstrap_tmpl.json'));
  t.notOk(isRevFile('envoy-rev.json'));
  t.end();
});
