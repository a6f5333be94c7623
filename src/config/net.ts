import { isIP } from 'node:net';

/** A validated CIDR block. */
export interface Cidr {
  readonly family: 4 | 6;
  /** The network address as written (already validated). */
  readonly address: string;
  readonly prefix: number;
  /** Canonical text, `address/prefix`; a bare address gets /32 or /128. */
  readonly text: string;
}

/**
 * Parses `a.b.c.d/n` or `x::y/n` strictly: no leading zeros in IPv4 octets (`010.1.1.1` is
 * octal to some parsers and decimal to others, so it is refused), prefix within the family's
 * range. Returns an error string instead of throwing, so callers can attach the origin.
 */
export function parseCidr(s: string): Cidr | string {
  const slash = s.indexOf('/');
  const address = slash < 0 ? s : s.slice(0, slash);
  // Checked before isIP (which also refuses it) to say why: 010 is octal 8 to some parsers.
  if (
    /^\d+\.\d+\.\d+\.\d+$/.test(address) &&
    address.split('.').some((o) => o.length > 1 && o.startsWith('0'))
  ) {
    return `"${s}" has an IPv4 octet with a leading zero (octal to some parsers); write it without`;
  }
  if (address.includes('%'))
    return `"${s}" has an IPv6 zone index (${address.slice(address.indexOf('%'))}); a CIDR cannot have one: remove it`;
  const fam = isIP(address);
  if (fam === 0) return `"${s}" is not a CIDR (address ${address} is not valid)`;
  const max = fam === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return `"${s}" has an invalid prefix length`;
    prefix = Number(p);
    if (prefix > max) return `"${s}" has prefix /${prefix}, above the maximum /${max}`;
  }
  return { family: fam as 4 | 6, address, prefix, text: `${address}/${prefix}` };
}
