import type { DiffItem } from './live';
import { familyName } from './plan';

/** Capture's differences for people to read (`iptables diff`). Pure. */

/** One line per difference, `-`/`+` style, for humans. */
export function formatDiff(items: readonly DiffItem[]): string {
  const lines: string[] = [];
  for (const d of items) {
    const where = `${familyName(d.family)} ${d.table}`;
    switch (d.kind) {
      case 'chain-missing':
        lines.push(
          `${where}: chain ${d.chain} missing`,
          ...(d.planned ?? []).map((r) => `+ -A ${d.chain} ${r}`),
        );
        break;
      case 'chain-extra':
        lines.push(
          `${where}: chain ${d.chain} not planned`,
          ...(d.live ?? []).map((r) => `- -A ${d.chain} ${r}`),
        );
        break;
      case 'chain-differs':
        lines.push(
          `${where}: chain ${d.chain} differs`,
          ...lineDiff(d.live ?? [], d.planned ?? []).map((x) => `${x.op} -A ${d.chain} ${x.rule}`),
        );
        break;
      case 'jump-missing':
        lines.push(`${where}: jump missing`, `+ -A ${d.chain} ${d.planned?.[0] ?? ''}`);
        break;
      case 'jump-extra':
        lines.push(
          `${where}: jump not planned (or duplicated)`,
          `- -A ${d.chain} ${d.live?.[0] ?? ''}`,
        );
        break;
      case 'routing-missing':
        lines.push(`${where}: ${d.chain} missing`, `+ ${d.planned?.[0] ?? ''}`);
        break;
      case 'routing-extra':
        lines.push(`${where}: ${d.chain} no longer planned`, `- ${d.live?.[0] ?? ''}`);
        break;
    }
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/** The rules only in `live` ("-") or only in `planned` ("+"), in order (longest common subsequence). */
export function lineDiff(
  live: readonly string[],
  planned: readonly string[],
): { op: '-' | '+'; rule: string }[] {
  const n = live.length;
  const m = planned.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] =
        live[i] === planned[j]
          ? lcs[i + 1]![j + 1]! + 1
          : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: { op: '-' | '+'; rule: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && live[i] === planned[j]) {
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      out.push({ op: '+', rule: planned[j++]! });
    } else {
      out.push({ op: '-', rule: live[i++]! });
    }
  }
  return out;
}

/** One difference in a few words, for the drift warning in the log: "ipv4 nat chain-differs ISTIO_OUTPUT". */
export function driftLine(d: DiffItem): string {
  return `${familyName(d.family)} ${d.table} ${d.kind} ${d.chain}`;
}
