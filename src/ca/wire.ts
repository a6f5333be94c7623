// size: one codec for the four messages of one protocol, sharing its field reader and writer.
/**
 * Protocol Buffers wire format for the four messages of Citadel's CSR APIs, by hand.
 *
 * The messages are tiny and fixed (src/ca/protos/*.proto are their source), and a generic
 * runtime (protobuf.js through @grpc/proto-loader) costs 65–280 ms of module load and descriptor
 * building on the 2-core target, a large share of the 0.3 s start-to-certificate budget. This
 * codec is a few hundred lines with no dependency; test/unit/ca-wire.test.ts checks it against
 * protobuf.js loading the .proto files, in both directions.
 *
 * Decoding follows proto3: unknown fields are skipped by wire type, the last value of a scalar
 * wins, repeated fields accumulate. Encoding omits fields at their default value.
 */

/** Wire types (groups, 3 and 4, are proto2-only and refused). */
const Wire = { Varint: 0, Fixed64: 1, Len: 2, Fixed32: 5 } as const;
type Wire = number;

// ---- messages (field names as in the .proto, camelCased) ----

/** istio.v1.auth.CsrRequest (Istio 1.0). */
export interface CsrRequestMsg {
  readonly csrPem: Buffer; // 1 bytes
  readonly nodeAgentCredential: Buffer; // 2 bytes
  readonly credentialType: string; // 3 string
  readonly requestedTtlMinutes: number; // 4 int32
}

/** google.rpc.Status, the fields we read (details = 3 is skipped). */
export interface StatusMsg {
  readonly code: number; // 1 int32
  readonly message: string; // 2 string
}

/** istio.v1.auth.CsrResponse (Istio 1.0). */
export interface CsrResponseMsg {
  readonly isApproved: boolean; // 1 bool
  readonly status: StatusMsg | undefined; // 2 google.rpc.Status
  readonly signedCert: Buffer; // 3 bytes
  readonly certChain: Buffer; // 4 bytes
}

/** istio.v1.auth.IstioCertificateRequest (Citadel 1.1+, istiod). */
export interface IstioCertificateRequestMsg {
  readonly csr: string; // 1 string
  readonly subjectId: string; // 2 string
  readonly validityDuration: number; // 3 int64, seconds (clamped to the safe integer range)
  /** 4 google.protobuf.Struct; only string values are kept when decoding. */
  readonly metadata: Readonly<Record<string, string>>;
}

/** istio.v1.auth.IstioCertificateResponse. */
export interface IstioCertificateResponseMsg {
  readonly certChain: readonly string[]; // 1 repeated string
}

// ---- writer ----

class Writer {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
  }

  private rawVarint(v: bigint): void {
    const out: number[] = [];
    let x = BigInt.asUintN(64, v);
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) byte |= 0x80;
      out.push(byte);
    } while (x !== 0n);
    this.push(Buffer.from(out));
  }

  private tag(field: number, wire: Wire): void {
    this.rawVarint(BigInt((field << 3) | wire));
  }

  /** int32, int64, bool: negative values as 64-bit two's complement (10 bytes). */
  varint(field: number, v: number | bigint | boolean): void {
    const n = typeof v === 'boolean' ? (v ? 1n : 0n) : BigInt(v);
    if (n === 0n) return;
    this.tag(field, Wire.Varint);
    this.rawVarint(n);
  }

  bytes(field: number, b: Uint8Array): void {
    if (b.length === 0) return;
    this.tag(field, Wire.Len);
    this.rawVarint(BigInt(b.length));
    this.push(Buffer.from(b.buffer, b.byteOffset, b.length));
  }

  string(field: number, s: string): void {
    this.bytes(field, Buffer.from(s, 'utf8'));
  }

  /** An embedded message, written even when empty (presence matters for messages). */
  message(field: number, body: Buffer): void {
    this.tag(field, Wire.Len);
    this.rawVarint(BigInt(body.length));
    this.push(body);
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

// ---- reader ----

export class WireError extends Error {
  override readonly name = 'WireError';
}

interface Field {
  readonly field: number;
  readonly wire: Wire;
  /** Varint value (Varint), or undefined. */
  readonly int: bigint | undefined;
  /** Payload (Len, Fixed32, Fixed64). */
  readonly data: Buffer | undefined;
}

function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new WireError('truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new WireError('varint longer than 10 bytes');
  };
  const take = (n: number): Buffer => {
    if (n > buf.length - pos) throw new WireError(`field length ${n} runs past the end`);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new WireError('field number 0');
    switch (wire) {
      case Wire.Varint:
        yield { field, wire, int: varint(), data: undefined };
        break;
      case Wire.Fixed64:
        yield { field, wire, int: undefined, data: take(8) };
        break;
      case Wire.Len: {
        const n = varint();
        if (n > BigInt(buf.length)) throw new WireError(`field length ${n} runs past the end`);
        yield { field, wire, int: undefined, data: take(Number(n)) };
        break;
      }
      case Wire.Fixed32:
        yield { field, wire, int: undefined, data: take(4) };
        break;
      default:
        // Groups (3, 4) are proto2-only and never appear in these messages.
        throw new WireError(`unsupported wire type ${wire} (field ${field})`);
    }
  }
}

/** The field's value if it has the expected wire type; a mismatch is malformed input. */
function expect(f: Field, wire: Wire, name: string): Field {
  if (f.wire !== wire)
    throw new WireError(`${name} (field ${f.field}) has wire type ${f.wire}, expected ${wire}`);
  return f;
}

const asInt32 = (v: bigint): number => Number(BigInt.asIntN(32, v));
const asInt64 = (v: bigint): number => {
  const n = BigInt.asIntN(64, v);
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  return Number(n > max ? max : n < -max ? -max : n);
};
const utf8 = (b: Buffer | undefined): string => (b ? b.toString('utf8') : '');
const copy = (b: Buffer | undefined): Buffer => (b ? Buffer.from(b) : Buffer.alloc(0));

// ---- CsrRequest ----

export function encodeCsrRequest(m: CsrRequestMsg): Buffer {
  const w = new Writer();
  w.bytes(1, m.csrPem);
  w.bytes(2, m.nodeAgentCredential);
  w.string(3, m.credentialType);
  w.varint(4, m.requestedTtlMinutes);
  return w.finish();
}

export function decodeCsrRequest(buf: Buffer): CsrRequestMsg {
  let csrPem: Buffer = Buffer.alloc(0);
  let nodeAgentCredential: Buffer = Buffer.alloc(0);
  let credentialType = '';
  let requestedTtlMinutes = 0;
  for (const f of fields(buf)) {
    if (f.field === 1) csrPem = copy(expect(f, Wire.Len, 'csr_pem').data);
    else if (f.field === 2)
      nodeAgentCredential = copy(expect(f, Wire.Len, 'node_agent_credential').data);
    else if (f.field === 3) credentialType = utf8(expect(f, Wire.Len, 'credential_type').data);
    else if (f.field === 4)
      requestedTtlMinutes = asInt32(expect(f, Wire.Varint, 'requested_ttl_minutes').int!);
  }
  return { csrPem, nodeAgentCredential, credentialType, requestedTtlMinutes };
}

// ---- CsrResponse ----

export function encodeCsrResponse(m: CsrResponseMsg): Buffer {
  const w = new Writer();
  w.varint(1, m.isApproved);
  if (m.status) {
    const s = new Writer();
    s.varint(1, m.status.code);
    s.string(2, m.status.message);
    w.message(2, s.finish());
  }
  w.bytes(3, m.signedCert);
  w.bytes(4, m.certChain);
  return w.finish();
}

function decodeStatus(buf: Buffer): StatusMsg {
  let code = 0;
  let message = '';
  for (const f of fields(buf)) {
    if (f.field === 1) code = asInt32(expect(f, Wire.Varint, 'status.code').int!);
    else if (f.field === 2) message = utf8(expect(f, Wire.Len, 'status.message').data);
  }
  return { code, message };
}

export function decodeCsrResponse(buf: Buffer): CsrResponseMsg {
  let isApproved = false;
  let status: StatusMsg | undefined;
  let signedCert: Buffer = Buffer.alloc(0);
  let certChain: Buffer = Buffer.alloc(0);
  for (const f of fields(buf)) {
    if (f.field === 1) isApproved = expect(f, Wire.Varint, 'is_approved').int !== 0n;
    else if (f.field === 2) status = decodeStatus(expect(f, Wire.Len, 'status').data!);
    else if (f.field === 3) signedCert = copy(expect(f, Wire.Len, 'signed_cert').data);
    else if (f.field === 4) certChain = copy(expect(f, Wire.Len, 'cert_chain').data);
  }
  return { isApproved, status, signedCert, certChain };
}

// ---- google.protobuf.Struct (string values only) ----

function encodeStruct(map: Readonly<Record<string, string>>): Buffer {
  const w = new Writer();
  for (const [k, v] of Object.entries(map)) {
    const value = new Writer();
    value.message(3, Buffer.from(v, 'utf8')); // Value.string_value (written even when empty)
    const entry = new Writer();
    entry.string(1, k);
    entry.message(2, value.finish());
    w.message(1, entry.finish());
  }
  return w.finish();
}

function decodeStruct(buf: Buffer): Record<string, string> {
  const out = new Map<string, string>();
  for (const f of fields(buf)) {
    if (f.field !== 1) continue;
    let key = '';
    let value: string | undefined;
    for (const e of fields(expect(f, Wire.Len, 'struct.fields').data!)) {
      if (e.field === 1) key = utf8(expect(e, Wire.Len, 'struct key').data);
      else if (e.field === 2) {
        // Value: a oneof; the last member present wins. Keep it only when it is a string.
        value = undefined;
        for (const v of fields(expect(e, Wire.Len, 'struct value').data!)) {
          value = v.field === 3 ? utf8(expect(v, Wire.Len, 'string_value').data) : undefined;
        }
      }
    }
    if (value !== undefined) out.set(key, value);
    else out.delete(key);
  }
  return Object.fromEntries(out);
}

// ---- IstioCertificateRequest ----

export function encodeIstioCertificateRequest(m: IstioCertificateRequestMsg): Buffer {
  const w = new Writer();
  w.string(1, m.csr);
  w.string(2, m.subjectId);
  w.varint(3, Math.trunc(m.validityDuration));
  if (Object.keys(m.metadata).length > 0) w.message(4, encodeStruct(m.metadata));
  return w.finish();
}

export function decodeIstioCertificateRequest(buf: Buffer): IstioCertificateRequestMsg {
  let csr = '';
  let subjectId = '';
  let validityDuration = 0;
  let metadata: Record<string, string> = {};
  for (const f of fields(buf)) {
    if (f.field === 1) csr = utf8(expect(f, Wire.Len, 'csr').data);
    else if (f.field === 2) subjectId = utf8(expect(f, Wire.Len, 'subject_id').data);
    else if (f.field === 3)
      validityDuration = asInt64(expect(f, Wire.Varint, 'validity_duration').int!);
    else if (f.field === 4) metadata = decodeStruct(expect(f, Wire.Len, 'metadata').data!);
  }
  return { csr, subjectId, validityDuration, metadata };
}

// ---- IstioCertificateResponse ----

export function encodeIstioCertificateResponse(m: IstioCertificateResponseMsg): Buffer {
  const w = new Writer();
  // Repeated: every element is written, empty strings too.
  for (const c of m.certChain) w.message(1, Buffer.from(c, 'utf8'));
  return w.finish();
}

export function decodeIstioCertificateResponse(buf: Buffer): IstioCertificateResponseMsg {
  const certChain: string[] = [];
  for (const f of fields(buf)) {
    if (f.field === 1) certChain.push(utf8(expect(f, Wire.Len, 'cert_chain').data));
  }
  return { certChain };
}

// ---- google.rpc.Status details: google.rpc.RetryInfo ----
//
// A server asks for a wait before the next try with a google.rpc.RetryInfo in the details of
// the status (AIP-194), which gRPC carries as the binary trailer `grpc-status-details-bin`:
//   Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
//   Any { string type_url = 1; bytes value = 2; }
//   RetryInfo { google.protobuf.Duration retry_delay = 1; }
//   Duration { int64 seconds = 1; int32 nanos = 2; }

export const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/** A Status with one RetryInfo detail asking for `delayMs` (the dev CA sends this). */
export function encodeStatusWithRetryInfo(code: number, message: string, delayMs: number): Buffer {
  const ms = Math.max(0, Math.round(delayMs));
  const duration = new Writer();
  duration.varint(1, Math.floor(ms / 1000));
  duration.varint(2, (ms % 1000) * 1_000_000);
  const info = new Writer();
  info.message(1, duration.finish());
  const any = new Writer();
  any.string(1, RETRY_INFO_TYPE);
  any.bytes(2, info.finish());
  const status = new Writer();
  status.varint(1, code);
  status.string(2, message);
  status.message(3, any.finish());
  return status.finish();
}

/**
 * The wait a RetryInfo in this serialized Status asks for, in ms; undefined when there is none
 * or the bytes are not a Status (a hint is advice: unreadable advice is no advice).
 */
export function decodeRetryDelayMs(status: Buffer): number | undefined {
  try {
    let delay: number | undefined;
    for (const f of fields(status)) {
      if (f.field !== 3) continue;
      let typeUrl = '';
      let value: Buffer | undefined;
      for (const a of fields(expect(f, Wire.Len, 'status.details').data!)) {
        if (a.field === 1) typeUrl = utf8(expect(a, Wire.Len, 'any.type_url').data);
        else if (a.field === 2) value = expect(a, Wire.Len, 'any.value').data;
      }
      if (typeUrl !== RETRY_INFO_TYPE || !value) continue;
      let seconds = 0;
      let nanos = 0;
      for (const r of fields(value)) {
        if (r.field !== 1) continue;
        for (const d of fields(expect(r, Wire.Len, 'retry_delay').data!)) {
          if (d.field === 1) seconds = asInt64(expect(d, Wire.Varint, 'duration.seconds').int!);
          else if (d.field === 2) nanos = asInt32(expect(d, Wire.Varint, 'duration.nanos').int!);
        }
      }
      delay = seconds * 1000 + Math.floor(nanos / 1_000_000);
    }
    return delay !== undefined && Number.isFinite(delay) && delay >= 0 ? delay : undefined;
  } catch (e) {
    if (e instanceof WireError) return undefined;
    throw e;
  }
}
