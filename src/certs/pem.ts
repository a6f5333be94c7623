/** Splits a PEM bundle into its `CERTIFICATE` blocks, normalised to end with a newline. */
export function splitCertificates(text: string): string[] {
  const out: string[] = [];
  const re = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
  for (const m of text.matchAll(re)) out.push(m[0] + '\n');
  return out;
}

export function joinPem(blocks: readonly string[]): string {
  return blocks.map((b) => (b.endsWith('\n') ? b : b + '\n')).join('');
}
