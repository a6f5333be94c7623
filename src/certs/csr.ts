import { isIP } from 'node:net';
import { sign } from 'node:crypto';
import {
  bitString,
  context,
  nullValue,
  octetString,
  oid,
  pem,
  sequence,
  set,
  integer,
  utf8String,
} from '../lib/der';
import type { WorkloadKey } from './keys';

const OID = {
  organization: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
};

/** One SAN entry in DER: `spiffe:` → URI [6], an IP → iPAddress [7], else dNSName [2] (1.0's rule). */
function generalName(v: string): Buffer {
  if (v.startsWith('spiffe:')) return context(6, false, Buffer.from(v, 'ascii'));
  const fam = isIP(v);
  if (fam === 4) return context(7, false, Buffer.from(v.split('.').map(Number)));
  if (fam === 6) return context(7, false, ipv6Bytes(v));
  return context(2, false, Buffer.from(v, 'ascii'));
}

function ipv6Bytes(v: string): Buffer {
  const [head, tail] = v.split('::') as [string, string | undefined];
  const words = (s: string | undefined): number[] =>
    s ? s.split(':').map((w) => parseInt(w, 16)) : [];
  const h = words(head);
  const t = words(tail);
  const all =
    tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return b;
}

/**
 * A PKCS#10 CSR as Citadel expects it: Subject `O=<org>` (emitted even when empty, as 1.0 did),
 * one extension, the SAN. Identities are comma-separated as in 1.0. Built with node:crypto and a
 * few lines of DER, so making a CSR costs well under a millisecond and loads nothing.
 */
export function createCsr(key: WorkloadKey, identity: string, org: string): Promise<string> {
  const names = identity
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(generalName);
  const subject = sequence(set(sequence(oid(OID.organization), utf8String(org))));
  const spki = key.publicKey.export({ type: 'spki', format: 'der' });
  const san = sequence(oid(OID.subjectAltName), octetString(sequence(...names)));
  const attributes = context(0, true, sequence(oid(OID.extensionRequest), set(sequence(san))));
  const info = sequence(integer(0), subject, spki, attributes);
  const rsa = key.algorithm === 'RSA';
  const algorithm = rsa
    ? sequence(oid(OID.sha256WithRSA), nullValue())
    : sequence(oid(OID.ecdsaWithSHA256));
  const signature = sign('sha256', info, key.object);
  return Promise.resolve(
    pem('CERTIFICATE REQUEST', sequence(info, algorithm, bitString(signature))),
  );
}
