// Small helpers the benches share to summarise samples and print aligned tables.

/** The middle sample (upper middle for an even count). */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** The sample at quantile q (0..1) of xs, nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/** "median (min–max)" with `digits` decimals. */
export function spread(xs: readonly number[], digits = 0): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${median(s).toFixed(digits)} (${s[0]!.toFixed(digits)}–${s[s.length - 1]!.toFixed(digits)})`;
}

/** Columns padded to their widest cell; the first `left` columns left-aligned, the rest right. */
export function table(head: readonly string[], rows: readonly string[][], left = 1): string {
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((x, c) => (c < left ? x.padEnd(w[c]!) : x.padStart(w[c]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
