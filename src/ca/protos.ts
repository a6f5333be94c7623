import * as grpc from '@grpc/grpc-js';
import { fromJSON, type Options } from '@grpc/proto-loader';

/**
 * The two Citadel CSR APIs as a protobuf.js JSON descriptor, so the definitions travel inside the
 * esbuild bundle as plain code: no .proto file is read at run time, no text parser runs at start,
 * and tsx (tests) and the bundle load it the same way.
 *
 * The human-readable source of truth is `src/ca/protos/*.proto`;
 * test/unit/ca-protos.test.ts loads those files with proto-loader and checks that they describe
 * exactly the same messages and services as this descriptor.
 */
export const CA_PROTO_JSON = {
  nested: {
    istio: {
      nested: {
        v1: {
          nested: {
            auth: {
              nested: {
                IstioCAService: {
                  methods: {
                    HandleCSR: { requestType: 'CsrRequest', responseType: 'CsrResponse' },
                  },
                },
                CsrRequest: {
                  fields: {
                    csr_pem: { type: 'bytes', id: 1 },
                    node_agent_credential: { type: 'bytes', id: 2 },
                    credential_type: { type: 'string', id: 3 },
                    requested_ttl_minutes: { type: 'int32', id: 4 },
                  },
                },
                CsrResponse: {
                  fields: {
                    is_approved: { type: 'bool', id: 1 },
                    status: { type: 'google.rpc.Status', id: 2 },
                    signed_cert: { type: 'bytes', id: 3 },
                    cert_chain: { type: 'bytes', id: 4 },
                  },
                },
                IstioCertificateService: {
                  methods: {
                    CreateCertificate: {
                      requestType: 'IstioCertificateRequest',
                      responseType: 'IstioCertificateResponse',
                    },
                  },
                },
                IstioCertificateRequest: {
                  fields: {
                    csr: { type: 'string', id: 1 },
                    subject_id: { type: 'string', id: 2 },
                    validity_duration: { type: 'int64', id: 3 },
                    metadata: { type: 'google.protobuf.Struct', id: 4 },
                  },
                },
                IstioCertificateResponse: {
                  fields: { cert_chain: { rule: 'repeated', type: 'string', id: 1 } },
                },
              },
            },
          },
        },
      },
    },
    google: {
      nested: {
        rpc: {
          nested: {
            Status: {
              fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 } },
            },
          },
        },
        protobuf: {
          nested: {
            // As protobuf.js defines these well-known types (camelCase field names), so that
            // loading the .proto files (which import google/protobuf/struct.proto) gives the same.
            Struct: { fields: { fields: { keyType: 'string', type: 'Value', id: 1 } } },
            Value: {
              oneofs: {
                kind: {
                  oneof: [
                    'nullValue',
                    'numberValue',
                    'stringValue',
                    'boolValue',
                    'structValue',
                    'listValue',
                  ],
                },
              },
              fields: {
                nullValue: { type: 'NullValue', id: 1 },
                numberValue: { type: 'double', id: 2 },
                stringValue: { type: 'string', id: 3 },
                boolValue: { type: 'bool', id: 4 },
                structValue: { type: 'Struct', id: 5 },
                listValue: { type: 'ListValue', id: 6 },
              },
            },
            NullValue: { values: { NULL_VALUE: 0 } },
            ListValue: { fields: { values: { rule: 'repeated', type: 'Value', id: 1 } } },
          },
        },
      },
    },
  },
};

/**
 * How messages map to JS objects: field names as in the .proto (snake_case), int64 as decimal
 * strings (validity_duration), enums as names, bytes as Buffers, unset fields present with their
 * defaults.
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

export const HANDLE_CSR_SERVICE = 'istio.v1.auth.IstioCAService';
export const CREATE_CERTIFICATE_SERVICE = 'istio.v1.auth.IstioCertificateService';

// Message shapes as proto-loader gives and takes them with PROTO_LOADER_OPTIONS.
export interface CsrRequestMsg {
  csr_pem: Buffer;
  node_agent_credential: Buffer;
  credential_type: string;
  requested_ttl_minutes: number;
}
export interface CsrResponseMsg {
  is_approved: boolean;
  status?: { code: number; message: string } | null;
  signed_cert: Buffer;
  cert_chain: Buffer;
}
export interface StructMsg {
  fields: Record<string, ValueMsg>;
}
export interface ValueMsg {
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMsg;
  listValue?: { values: ValueMsg[] };
  kind?: string;
}
export interface IstioCertificateRequestMsg {
  csr: string;
  subject_id: string;
  /** int64 seconds: a decimal string when received, a number or string when sent. */
  validity_duration: string | number;
  metadata?: StructMsg | null;
}
export interface IstioCertificateResponseMsg {
  cert_chain: string[];
}

export interface CaServices {
  readonly handleCsr: grpc.ServiceDefinition;
  readonly createCertificate: grpc.ServiceDefinition;
  readonly HandleCsrClient: grpc.ServiceClientConstructor;
  readonly CreateCertificateClient: grpc.ServiceClientConstructor;
}

// protobuf.js's INamespace typing insists on fields (`comment`) its own JSON output omits.
type ProtoJson = Parameters<typeof fromJSON>[0];

let cached: CaServices | undefined;

/** The service definitions and client constructors, built once per process. */
export function caServices(): CaServices {
  if (cached) return cached;
  const pkg = grpc.loadPackageDefinition(
    fromJSON(CA_PROTO_JSON as ProtoJson, PROTO_LOADER_OPTIONS),
  );
  const auth = (pkg.istio as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const ns = auth.auth as grpc.GrpcObject;
  const HandleCsrClient = ns.IstioCAService as grpc.ServiceClientConstructor;
  const CreateCertificateClient = ns.IstioCertificateService as grpc.ServiceClientConstructor;
  cached = {
    handleCsr: HandleCsrClient.service,
    createCertificate: CreateCertificateClient.service,
    HandleCsrClient,
    CreateCertificateClient,
  };
  return cached;
}

/** A flat string map as a google.protobuf.Struct. */
export function toStruct(map: Readonly<Record<string, string>>): StructMsg {
  const fields: Record<string, ValueMsg> = {};
  for (const [k, v] of Object.entries(map)) fields[k] = { stringValue: v };
  return { fields };
}

/** The string-valued entries of a google.protobuf.Struct (others are dropped). */
export function fromStruct(s: StructMsg | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) {
    if (typeof v.stringValue === 'string' && (v.kind === undefined || v.kind === 'stringValue')) {
      out[k] = v.stringValue;
    }
  }
  return out;
}
