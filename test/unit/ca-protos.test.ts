// The .proto files in src/ca/protos/ are the readable source of the two CSR APIs; the agent runs
// on the equivalent JSON descriptor in src/ca/protos.ts (embedded in the bundle). These tests keep
// the two identical and check the wire format against the field numbers Istio documents.
import t from 'tap';
import * as path from 'node:path';
import { fromJSON, loadSync, type PackageDefinition } from '@grpc/proto-loader';
import type { MessageTypeDefinition, MethodDefinition } from '@grpc/proto-loader';
import {
  CA_PROTO_JSON,
  caServices,
  fromStruct,
  PROTO_LOADER_OPTIONS,
  toStruct,
} from '../../src/ca/protos';

const PROTO_DIR = path.resolve(__dirname, '../../src/ca/protos');

function fromFiles(): PackageDefinition {
  return loadSync(['ca_service.proto', 'istioca.proto'], {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [PROTO_DIR],
  });
}

/** A comparable description of every message and service in a package definition. */
function describe(def: PackageDefinition): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(def)) {
    if ('format' in entry) {
      out[name] = (entry as MessageTypeDefinition<unknown, unknown>).type;
    } else {
      out[name] = Object.fromEntries(
        Object.entries(entry as Record<string, MethodDefinition<unknown, unknown>>).map(
          ([m, d]) => [
            m,
            {
              path: d.path,
              requestStream: d.requestStream,
              responseStream: d.responseStream,
              request: d.requestType.type,
              response: d.responseType.type,
            },
          ],
        ),
      );
    }
  }
  return out;
}

void t.test('the embedded descriptor describes exactly what the .proto files say', (t) => {
  const files = describe(fromFiles());
  const embedded = describe(
    fromJSON(CA_PROTO_JSON as Parameters<typeof fromJSON>[0], PROTO_LOADER_OPTIONS),
  );
  t.same(Object.keys(embedded).sort(), Object.keys(files).sort(), 'same message and service names');
  t.ok('istio.v1.auth.IstioCAService' in files && 'istio.v1.auth.IstioCertificateService' in files);
  for (const name of Object.keys(files)) t.same(embedded[name], files[name], name);
  t.end();
});

void t.test('the comparison notices a changed field number', (t) => {
  const changed = structuredClone(CA_PROTO_JSON);
  changed.nested.istio.nested.v1.nested.auth.nested.CsrRequest.fields.requested_ttl_minutes.id = 5;
  const files = describe(fromFiles());
  const embedded = describe(
    fromJSON(changed as Parameters<typeof fromJSON>[0], PROTO_LOADER_OPTIONS),
  );
  t.not(
    JSON.stringify(embedded['istio.v1.auth.CsrRequest']),
    JSON.stringify(files['istio.v1.auth.CsrRequest']),
  );
  t.end();
});

void t.test('method paths are the ones Citadel serves', (t) => {
  const s = caServices();
  t.equal(s.handleCsr.HandleCSR!.path, '/istio.v1.auth.IstioCAService/HandleCSR');
  t.equal(
    s.createCertificate.CreateCertificate!.path,
    '/istio.v1.auth.IstioCertificateService/CreateCertificate',
  );
  t.end();
});

/** Protobuf wire: (field << 3) | wire type, then the payload. */
function tag(field: number, wire: number): number {
  return (field << 3) | wire;
}

void t.test('CsrRequest encodes with 1.0 field numbers and types', (t) => {
  const m = caServices().handleCsr.HandleCSR!;
  const bytes = m.requestSerialize({
    csr_pem: Buffer.from('C'),
    node_agent_credential: Buffer.from('N'),
    credential_type: 'onprem',
    requested_ttl_minutes: 300,
  });
  const expected = Buffer.from([
    tag(1, 2),
    1,
    0x43, // csr_pem bytes "C"
    tag(2, 2),
    1,
    0x4e, // node_agent_credential bytes "N"
    tag(3, 2),
    6,
    ...Buffer.from('onprem'), // credential_type string
    tag(4, 0),
    0xac,
    0x02, // requested_ttl_minutes int32 300 (varint)
  ]);
  t.same([...bytes], [...expected]);
  t.end();
});

void t.test('CsrResponse decodes 1.0 field numbers (and skips google.rpc.Status details)', (t) => {
  const m = caServices().handleCsr.HandleCSR!;
  // status { code: 3, message: "x", details: <field 3, bytes> } must decode; details are skipped.
  const status = Buffer.from([tag(1, 0), 3, tag(2, 2), 1, 0x78, tag(3, 2), 2, 0x0a, 0x00]);
  const wire = Buffer.from([
    tag(1, 0),
    1, // is_approved true
    tag(2, 2),
    status.length,
    ...status,
    tag(3, 2),
    1,
    0x4c, // signed_cert "L"
    tag(4, 2),
    1,
    0x49, // cert_chain "I"
  ]);
  const res = m.responseDeserialize(wire) as Record<string, unknown>;
  t.equal(res.is_approved, true);
  t.same(res.status, { code: 3, message: 'x' });
  t.equal(String(res.signed_cert), 'L');
  t.equal(String(res.cert_chain), 'I');
  t.end();
});

void t.test(
  'IstioCertificateRequest encodes csr=1, subject_id=2, validity_duration=3 (int64), metadata=4',
  (t) => {
    const m = caServices().createCertificate.CreateCertificate!;
    const bytes = m.requestSerialize({
      csr: 'C',
      subject_id: 'S',
      validity_duration: '3600',
      metadata: toStruct({ CertSigner: 'x' }),
    });
    const value = Buffer.from([tag(3, 2), 1, 0x78]); // Value { string_value: "x" }
    const entry = Buffer.from([
      tag(1, 2),
      10,
      ...Buffer.from('CertSigner'),
      tag(2, 2),
      value.length,
      ...value,
    ]);
    const struct = Buffer.from([tag(1, 2), entry.length, ...entry]); // Struct { fields: map entry }
    const expected = Buffer.from([
      tag(1, 2),
      1,
      0x43,
      tag(2, 2),
      1,
      0x53,
      tag(3, 0),
      0x90,
      0x1c, // 3600 as varint
      tag(4, 2),
      struct.length,
      ...struct,
    ]);
    t.same([...bytes], [...expected]);
    const back = m.requestDeserialize(bytes) as {
      validity_duration: string;
      metadata: Parameters<typeof fromStruct>[0];
    };
    t.equal(back.validity_duration, '3600', 'int64 arrives as a decimal string');
    t.same(fromStruct(back.metadata), { CertSigner: 'x' });
    t.end();
  },
);

void t.test('IstioCertificateResponse carries a repeated string cert_chain=1', (t) => {
  const m = caServices().createCertificate.CreateCertificate!;
  const wire = Buffer.from([tag(1, 2), 1, 0x61, tag(1, 2), 1, 0x62]);
  t.same((m.responseDeserialize(wire) as { cert_chain: string[] }).cert_chain, ['a', 'b']);
  t.end();
});

void t.test('fromStruct keeps only string values', (t) => {
  t.same(
    fromStruct({
      fields: {
        a: { stringValue: 'x', kind: 'stringValue' },
        b: { numberValue: 1, kind: 'numberValue' },
      },
    }),
    { a: 'x' },
  );
  t.same(fromStruct(null), {});
  t.end();
});
