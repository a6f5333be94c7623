/**
 * A small DER (ASN.1) encoder: just what a PKCS#10 certificate request needs. Keeping CSR
 * creation on node:crypto and this file means the daemon never loads an ASN.1 library at start.
 */

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Tag-length-value. */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

export const sequence = (...items: Uint8Array[]): Buffer => tlv(0x30, ...items);
export const set = (...items: Uint8Array[]): Buffer => tlv(0x31, ...items);
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const octetString = (b: Uint8Array): Buffer => tlv(0x04, b);
/** A BIT STRING with no unused bits. */
export const bitString = (b: Uint8Array): Buffer => tlv(0x03, Buffer.from([0]), b);

export function integer(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 127)
    throw new RangeError('small non-negative integers only');
  return tlv(0x02, Buffer.from([n]));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const [a, b, ...rest] = parts;
  if (a === undefined || b === undefined) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [a * 40 + b];
  for (const p of rest) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128))
      chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** Context-specific tag number `n`; `constructed` for an EXPLICIT or SET/SEQUENCE-like IMPLICIT. */
export function context(n: number, constructed: boolean, ...content: Uint8Array[]): Buffer {
  return tlv(0x80 | (constructed ? 0x20 : 0) | n, ...content);
}

export function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64.endsWith('\n') ? b64 : b64 + '\n'}-----END ${label}-----\n`;
}
