import type { Cidr } from '../config/index';

/**
 * CIDR text exactly as iptables-save prints it: host bits cleared, IPv6 compressed the way
 * glibc's inet_ntop does it. The plan uses this form so that a rule read back from
 * `iptables-save` compares equal, string for string, to the rule we planned.
 */
export function canonicalCidr(c: Cidr): string {
  const bytes = c.family === 4 ? parseIpv4(c.address) : parseIpv6(c.address);
  mask(bytes, c.prefix);
  return `${c.family === 4 ? formatIpv4(bytes) : formatIpv6(bytes)}/${c.prefix}`;
}

/** `-d <cidr> ` as a rule fragment; iptables prints nothing for a /0 match. */
export function destMatch(c: Cidr): string {
  return c.prefix === 0 ? '' : `-d ${canonicalCidr(c)} `;
}

function parseIpv4(s: string): number[] {
  return s.split('.').map(Number);
}

/** Parses an address already validated by net.isIP (so no error handling beyond shape). */
function parseIpv6(s: string): number[] {
  let tail: number[] = [];
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = parseIpv4(text.slice(lastColon + 1));
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (p: string): number[] =>
    p === '' ? [] : p.split(':').map((g) => parseInt(g, 16));
  const hi = groups(head);
  const lo = rest === undefined ? [] : groups(rest);
  const words =
    rest === undefined
      ? hi
      : [...hi, ...new Array<number>(8 - hi.length - lo.length).fill(0), ...lo];
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function mask(bytes: number[], prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
}

function formatIpv4(b: readonly number[]): string {
  return b.join('.');
}

/** glibc inet_ntop(AF_INET6): longest run (first on a tie) of two or more zero words becomes "::". */
export function formatIpv6(b: readonly number[]): string {
  const w = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
      if (cur.len > best.len) best = cur;
    } else {
      cur = { base: -1, len: 0 };
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && w[5] === 0xffff))) {
      out += formatIpv4(b.slice(12));
      break;
    }
    out += w[i]!.toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}
