/**
 * `net.isIP` and `net.isIPv6` that answer a string without a colon at once, put into node:net
 * when the first CA client is made (createCaClient).
 *
 * Why: on the way to the first CSR, Node's TLS (the servername check in `tls.connect`,
 * `checkServerIdentity`) and grpc-js (every address it handles) ask them about host names and
 * IPv4 addresses. Node 20 answers isIPv6 with one large regular expression, which V8 compiles
 * the first time it runs: 9–11 ms of the main thread, the largest single item left on that path
 * (bench/start-profile.ts; docs/decisions.md, "Issue 13, fifth pass").
 *
 * Why it is exact: every alternative of Node's IPv6 pattern has a colon before its optional
 * `%zone` (`(?:seg:){1,7}…` or `:…`), so a string without one is never IPv6 and isIP's answer
 * for it is isIPv4's. Any other input (a colon, or not a string) goes to Node's own function.
 * test/unit/ip-fast-path.test.ts compares the answers with Node's over known and random inputs.
 *
 * Why in node:net: Node's tls and _tls_wrap call `net.isIP` through the module object, and
 * grpc-js `net.isIPv6`; a replaced property reaches both. Node's internal copy (dns.lookup's)
 * is untouched and gives the same answers. Where the properties cannot be written, nothing
 * changes.
 */
import nodeNet from 'node:net';

/** The functions replaced, as node:net has them. */
export interface IpChecks {
  isIP: (input: string) => number;
  isIPv4: (input: string) => boolean;
  isIPv6: (input: string) => boolean;
}

/** Marks the installed isIPv6, so a second install sees it. */
const INSTALLED = Symbol.for('istio-node-agent.ip-fast-path');

/** Whether `input` may be an IPv6 literal: a string without a colon never is. Pure. */
export function mayBeIPv6(input: unknown): boolean {
  return typeof input !== 'string' || input.includes(':');
}

/**
 * Replaces `mod.isIP` and `mod.isIPv6` (node:net's by default) with the fast path, once.
 * Returns whether it is in place; false (and `mod` unchanged) when they cannot be written.
 */
export function installIpFastPath(mod: IpChecks = nodeNet): boolean {
  if (INSTALLED in mod.isIPv6) return true;
  const { isIP, isIPv4, isIPv6 } = mod;
  const fastIPv6 = Object.assign((input: string) => mayBeIPv6(input) && isIPv6(input), {
    [INSTALLED]: true,
  });
  const fastIP = (input: string): number =>
    mayBeIPv6(input) ? isIP(input) : isIPv4(input) ? 4 : 0;
  try {
    mod.isIPv6 = fastIPv6;
  } catch {
    return false; // not writable (frozen by a later Node, or a hardened runtime): as it was
  }
  try {
    mod.isIP = fastIP;
  } catch {
    // isIPv6's is in place; each one gives Node's answers on its own.
  }
  return true;
}
