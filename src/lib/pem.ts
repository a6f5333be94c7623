/**
 * PEM text, in one place: reading certificates out of a bundle (root-cert.pem, cert-chain.pem,
 * what the CA sends) and writing a chain back. Only the blocks are found here; what a
 * certificate says is checked by its reader (certs/chain.ts, certs/validate.ts).
 */

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;

/**
 * The CERTIFICATE blocks of a file we trust the shape of (a bundle may carry comments or other
 * blocks between them, as `openssl x509 -text` output does), in order, each ending with a
 * newline. Anything else in the text is ignored.
 */
export function extractCertificates(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(CERTIFICATE_BLOCK)) out.push(m[0] + '\n');
  return out;
}

/**
 * The CERTIFICATE blocks of text from outside (the CA's answer), each normalized to end with
 * one newline. Strict: undefined when the text holds anything else: no block, a block of
 * another type, a body that is not base64, or non-blank text between blocks.
 */
export function splitPemCertificates(text: string): string[] | undefined {
  const out: string[] = [];
  let last = 0;
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (text.slice(last, m.index).trim() !== '') return undefined;
    if (m[1] !== 'CERTIFICATE') return undefined;
    out.push(m[0].replace(/\r\n/g, '\n') + '\n');
    last = m.index + m[0].length;
  }
  if (text.slice(last).trim() !== '') return undefined;
  return out.length > 0 ? out : undefined;
}

/** PEM blocks joined into one file's text, each ending with a newline. */
export function joinPem(blocks: readonly string[]): string {
  return blocks.map((b) => (b.endsWith('\n') ? b : b + '\n')).join('');
}
