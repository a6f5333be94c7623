// src/ca/wire.ts encodes Citadel's four messages by hand. These tests hold it to the .proto files
// in src/ca/protos/ (loaded by protobuf.js through @grpc/proto-loader, test-only) in both
// directions, and to the field numbers Istio documents, byte by byte.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { tmpDir } from './../helpers/tmp';
import {
  decodeCsrRequest,
  decodeCsrResponse,
  decodeRetryDelayMs,
  encodeStatusWithRetryInfo,
  RETRY_INFO_TYPE,
  decodeIstioCertificateRequest,
  decodeIstioCertificateResponse,
  encodeCsrRequest,
  encodeCsrResponse,
  encodeIstioCertificateRequest,
  encodeIstioCertificateResponse,
  WireError,
  type IstioCertificateRequestMsg,
} from '../../src/ca/wire';
import { CREATE_CERTIFICATE, HANDLE_CSR } from '../../src/ca/protos';

const PROTO_DIR = path.resolve(__dirname, '../../src/ca/protos');
const def = loadSync(['ca_service.proto', 'istioca.proto'], {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});
type Method = MethodDefinition<object, object>;
const ref = {
  handleCsr: (def['istio.v1.auth.IstioCAService'] as Record<string, Method>).HandleCSR!,
  createCertificate: (def['istio.v1.auth.IstioCertificateService'] as Record<string, Method>)
    .CreateCertificate!,
};

/** Protobuf wire: (field << 3) | wire type. */
const tag = (field: number, wire: number): number => (field << 3) | wire;

void t.test('method paths and .proto service names agree', (t) => {
  t.equal(HANDLE_CSR.path, '/istio.v1.auth.IstioCAService/HandleCSR');
  t.equal(ref.handleCsr.path, HANDLE_CSR.path);
  t.equal(CREATE_CERTIFICATE.path, '/istio.v1.auth.IstioCertificateService/CreateCertificate');
  t.equal(ref.createCertificate.path, CREATE_CERTIFICATE.path);
  t.end();
});

const csrRequests = [
  {
    csrPem: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\n…'),
    nodeAgentCredential: Buffer.from('chain'),
    credentialType: 'onprem',
    requestedTtlMinutes: 129600,
  },
  {
    csrPem: Buffer.alloc(0),
    nodeAgentCredential: Buffer.alloc(0),
    credentialType: '',
    requestedTtlMinutes: 0,
  },
  {
    csrPem: Buffer.from([0, 255, 128]),
    nodeAgentCredential: Buffer.alloc(300, 7),
    credentialType: 'gcp',
    requestedTtlMinutes: 2 ** 31 - 1,
  },
  {
    csrPem: Buffer.from('x'),
    nodeAgentCredential: Buffer.from('y'),
    credentialType: 'ünïcødé',
    requestedTtlMinutes: -1,
  },
];

void t.test('CsrRequest: ours → protobuf.js and protobuf.js → ours', (t) => {
  for (const m of csrRequests) {
    const theirs = ref.handleCsr.requestDeserialize(encodeCsrRequest(m)) as Record<string, unknown>;
    t.same(theirs, {
      csr_pem: m.csrPem,
      node_agent_credential: m.nodeAgentCredential,
      credential_type: m.credentialType,
      requested_ttl_minutes: m.requestedTtlMinutes,
    });
    const wire = ref.handleCsr.requestSerialize({
      csr_pem: m.csrPem,
      node_agent_credential: m.nodeAgentCredential,
      credential_type: m.credentialType,
      requested_ttl_minutes: m.requestedTtlMinutes,
    });
    t.same(decodeCsrRequest(wire), m);
    t.same(decodeCsrRequest(encodeCsrRequest(m)), m, 'round trip');
  }
  t.end();
});

void t.test('CsrRequest bytes: 1.0 field numbers and types', (t) => {
  const bytes = encodeCsrRequest({
    csrPem: Buffer.from('C'),
    nodeAgentCredential: Buffer.from('N'),
    credentialType: 'onprem',
    requestedTtlMinutes: 300,
  });
  // prettier-ignore
  const expected = [
    tag(1, 2), 1, 0x43, // csr_pem bytes "C"
    tag(2, 2), 1, 0x4e, // node_agent_credential bytes "N"
    tag(3, 2), 6, ...Buffer.from('onprem'), // credential_type string
    tag(4, 0), 0xac, 0x02, // requested_ttl_minutes int32 300 (varint)
  ];
  t.same([...bytes], expected);
  t.end();
});

void t.test('CsrResponse: both directions, status present or absent', (t) => {
  const samples = [
    {
      isApproved: true,
      status: undefined,
      signedCert: Buffer.from('leaf'),
      certChain: Buffer.from('chain'),
    },
    {
      isApproved: false,
      status: { code: 3, message: 'nope' },
      signedCert: Buffer.alloc(0),
      certChain: Buffer.alloc(0),
    },
    {
      isApproved: false,
      status: { code: 0, message: '' },
      signedCert: Buffer.alloc(0),
      certChain: Buffer.alloc(0),
    },
  ];
  for (const m of samples) {
    const theirs = ref.handleCsr.responseDeserialize(encodeCsrResponse(m)) as Record<
      string,
      unknown
    >;
    t.same(theirs, {
      is_approved: m.isApproved,
      status: m.status ?? null,
      signed_cert: m.signedCert,
      cert_chain: m.certChain,
    });
    const wire = ref.handleCsr.responseSerialize({
      is_approved: m.isApproved,
      status: m.status ?? null,
      signed_cert: m.signedCert,
      cert_chain: m.certChain,
    });
    t.same(decodeCsrResponse(wire), m);
  }
  t.end();
});

void t.test('CsrResponse skips what it does not know (Status.details, unknown fields)', (t) => {
  // prettier-ignore
  const status = [tag(1, 0), 3, tag(2, 2), 1, 0x78, tag(3, 2), 2, 0x0a, 0x00]; // details: an Any
  // prettier-ignore
  const wire = Buffer.from([
    tag(1, 0), 1, // is_approved
    tag(2, 2), status.length, ...status,
    tag(3, 2), 1, 0x4c, // signed_cert "L"
    tag(9, 5), 1, 2, 3, 4, // unknown fixed32
    tag(10, 1), 1, 2, 3, 4, 5, 6, 7, 8, // unknown fixed64
    tag(11, 0), 0x80, 0x01, // unknown varint
    tag(4, 2), 1, 0x49, // cert_chain "I"
  ]);
  const m = decodeCsrResponse(wire);
  t.same(m, {
    isApproved: true,
    status: { code: 3, message: 'x' },
    signedCert: Buffer.from('L'),
    certChain: Buffer.from('I'),
  });
  t.end();
});

const certRequests: IstioCertificateRequestMsg[] = [
  {
    csr: 'CSR',
    subjectId: 'spiffe://cluster.local/ns/default/sa/vm',
    validityDuration: 7_776_000,
    metadata: {},
  },
  { csr: '', subjectId: '', validityDuration: 0, metadata: { CertSigner: 'signer', empty: '' } },
  { csr: 'c', subjectId: 's', validityDuration: Number.MAX_SAFE_INTEGER, metadata: { a: 'ä' } },
  { csr: 'c', subjectId: 's', validityDuration: -5, metadata: {} },
];

void t.test('IstioCertificateRequest: both directions, int64 and Struct included', (t) => {
  for (const m of certRequests) {
    const theirs = ref.createCertificate.requestDeserialize(
      encodeIstioCertificateRequest(m),
    ) as Record<string, unknown>;
    const fields = Object.fromEntries(
      Object.entries(m.metadata).map(([k, v]) => [k, { stringValue: v, kind: 'stringValue' }]),
    );
    t.same(theirs, {
      csr: m.csr,
      subject_id: m.subjectId,
      validity_duration: String(m.validityDuration),
      metadata: Object.keys(m.metadata).length > 0 ? { fields } : null,
    });
    const wire = ref.createCertificate.requestSerialize({
      csr: m.csr,
      subject_id: m.subjectId,
      validity_duration: String(m.validityDuration),
      metadata: {
        fields: Object.fromEntries(
          Object.entries(m.metadata).map(([k, v]) => [k, { stringValue: v }]),
        ),
      },
    });
    t.same(decodeIstioCertificateRequest(wire), m);
  }
  t.end();
});

void t.test('Struct values that are not strings are dropped when decoding', (t) => {
  const wire = ref.createCertificate.requestSerialize({
    csr: 'c',
    metadata: {
      fields: {
        s: { stringValue: 'x' },
        n: { numberValue: 1.5 },
        b: { boolValue: true },
        z: { nullValue: 'NULL_VALUE' },
        o: { structValue: { fields: { inner: { stringValue: 'y' } } } },
        l: { listValue: { values: [{ stringValue: 'q' }] } },
      },
    },
  });
  t.same(decodeIstioCertificateRequest(wire).metadata, { s: 'x' });
  t.end();
});

void t.test(
  'IstioCertificateRequest bytes: csr=1, subject_id=2, validity_duration=3, metadata=4',
  (t) => {
    const bytes = encodeIstioCertificateRequest({
      csr: 'C',
      subjectId: 'S',
      validityDuration: 3600,
      metadata: { CertSigner: 'x' },
    });
    const value = [tag(3, 2), 1, 0x78]; // Value { string_value: "x" }
    const entry = [tag(1, 2), 10, ...Buffer.from('CertSigner'), tag(2, 2), value.length, ...value];
    const struct = [tag(1, 2), entry.length, ...entry]; // Struct { fields: one map entry }
    // prettier-ignore
    const expected = [
    tag(1, 2), 1, 0x43,
    tag(2, 2), 1, 0x53,
    tag(3, 0), 0x90, 0x1c, // 3600 as varint
    tag(4, 2), struct.length, ...struct,
  ];
    t.same([...bytes], expected);
    t.end();
  },
);

void t.test('IstioCertificateResponse: repeated cert_chain keeps order and empty elements', (t) => {
  for (const certChain of [['leaf', 'inter', 'root'], [], ['', 'x']]) {
    const theirs = ref.createCertificate.responseDeserialize(
      encodeIstioCertificateResponse({ certChain }),
    ) as Record<string, unknown>;
    t.same(theirs, { cert_chain: certChain });
    t.same(
      decodeIstioCertificateResponse(
        ref.createCertificate.responseSerialize({ cert_chain: certChain }),
      ),
      { certChain },
    );
  }
  t.end();
});

void t.test('random messages survive both directions', (t) => {
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const str = (): string =>
    Array.from({ length: rnd(40) }, () => String.fromCodePoint(32 + rnd(2000))).join('');
  const buf = (): Buffer => Buffer.from(Array.from({ length: rnd(200) }, () => rnd(256)));
  for (let i = 0; i < 200; i++) {
    const a = {
      csrPem: buf(),
      nodeAgentCredential: buf(),
      credentialType: str(),
      requestedTtlMinutes: rnd(2 ** 31) - 2 ** 30,
    };
    t.same(
      decodeCsrRequest(
        Buffer.from(
          ref.handleCsr.requestSerialize({
            csr_pem: a.csrPem,
            node_agent_credential: a.nodeAgentCredential,
            credential_type: a.credentialType,
            requested_ttl_minutes: a.requestedTtlMinutes,
          }),
        ),
      ),
      a,
    );
    const b = { certChain: Array.from({ length: rnd(5) }, str) };
    t.same(
      (
        ref.createCertificate.responseDeserialize(encodeIstioCertificateResponse(b)) as {
          cert_chain: string[];
        }
      ).cert_chain,
      b.certChain,
    );
  }
  t.end();
});

void t.test('malformed input is refused with WireError', (t) => {
  const bad: [string, number[]][] = [
    ['truncated varint', [tag(1, 0), 0x80]],
    ['length past the end', [tag(3, 2), 5, 0x41]],
    ['varint longer than 10 bytes', [tag(1, 0), ...Array<number>(11).fill(0x80), 0]],
    ['group wire type', [tag(1, 3)]],
    ['field number 0', [0x00, 0x00]],
    ['known field with the wrong wire type', [tag(3, 0), 1]],
  ];
  for (const [name, bytes] of bad) {
    t.throws(() => decodeCsrResponse(Buffer.from(bytes)), WireError, name);
  }
  t.throws(
    () => decodeIstioCertificateResponse(Buffer.from([tag(1, 0), 1])),
    WireError,
    'cert_chain as a varint',
  );
  t.end();
});

// google.rpc.Status with a google.rpc.RetryInfo in its details: what gRPC servers send as the
// binary trailer grpc-status-details-bin to ask for a wait before the next try (AIP-194).
void t.test('RetryInfo in google.rpc.Status details, both directions against protobuf.js', (t) => {
  const dir = tmpDir(t, 'retryinfo-', { mode: 0o700 });
  writeFileSync(
    path.join(dir, 'details.proto'),
    `syntax = "proto3";
package google.rpc;
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
message RetryInfo { google.protobuf.Duration retry_delay = 1; }
service Probe { rpc S(Status) returns (RetryInfo); }
`,
  );
  const probe = (
    loadSync('details.proto', { keepCase: true, longs: String, bytes: Buffer, includeDirs: [dir] })[
      'google.rpc.Probe'
    ] as Record<string, Method>
  ).S!;
  const statusWith = (details: { type_url: string; value: Buffer }[]): Buffer =>
    probe.requestSerialize({ code: 8, message: 'slow down', details });
  const retryInfo = (seconds: number, nanos: number): Buffer =>
    probe.responseSerialize({ retry_delay: { seconds, nanos } });

  // Theirs → ours.
  t.equal(
    decodeRetryDelayMs(
      statusWith([{ type_url: RETRY_INFO_TYPE, value: retryInfo(30, 500_000_000) }]),
    ),
    30_500,
  );
  t.equal(
    decodeRetryDelayMs(
      statusWith([
        { type_url: 'type.googleapis.com/google.rpc.DebugInfo', value: Buffer.from('x') },
        { type_url: RETRY_INFO_TYPE, value: retryInfo(2, 0) },
      ]),
    ),
    2000,
    'found among other details',
  );
  t.equal(decodeRetryDelayMs(statusWith([])), undefined, 'no details');
  t.equal(
    decodeRetryDelayMs(
      statusWith([{ type_url: 'type.googleapis.com/google.rpc.Help', value: Buffer.alloc(0) }]),
    ),
    undefined,
    'no RetryInfo',
  );
  t.equal(decodeRetryDelayMs(Buffer.from([tag(3, 2), 9])), undefined, 'malformed: no hint');

  // Ours → theirs.
  const ours = encodeStatusWithRetryInfo(8, 'slow down', 12_345);
  const back = probe.requestDeserialize(ours) as {
    code: number;
    message: string;
    details: { type_url: string; value: Buffer }[];
  };
  t.equal(back.code, 8);
  t.equal(back.message, 'slow down');
  t.equal(back.details[0]!.type_url, RETRY_INFO_TYPE);
  t.same(probe.responseDeserialize(back.details[0]!.value), {
    retry_delay: { seconds: '12', nanos: 345_000_000 },
  });
  t.equal(decodeRetryDelayMs(ours), 12_345, 'and round trip');
  t.end();
});
