import { isIP } from 'node:net';

/**
 * `host:port` text, in one place: CITADEL_ADDRESS, PILOT_ADDRESS, ISTIO_DNS_SERVER, the dev CA's
 * --listen, and the addresses the agent dials. An IPv6 address is written in brackets,
 * `[fd00::1]:15011`; the brackets are not part of the host returned.
 */

export interface HostPort {
  /** The host: a name, an IPv4 address, or an IPv6 address (without brackets). */
  readonly host: string;
  readonly port: number;
  /** The host was written in brackets (an IPv6 address). */
  readonly bracketed: boolean;
}

/**
 * Why a text is not `host:port`: `form` (not that shape at all), `brackets` (brackets around
 * something that is not an IPv6 address), `port` (digits, but not a port in range).
 */
export type HostPortProblem = 'form' | 'brackets' | 'port';

export interface HostPortOptions {
  /** The port when the text has none; without it a port is required. */
  readonly defaultPort?: number;
  /** The lowest port accepted: 1 (default), or 0 where 0 means "any free port" (a listener). */
  readonly minPort?: 0 | 1;
}

export type HostPortResult =
  | ({ readonly ok: true } & HostPort)
  | {
      readonly ok: false;
      readonly problem: HostPortProblem;
      /** With `port`: the host, which was fine. */
      readonly host?: string;
    };

/** A name or IPv4 address: no blank, slash, bracket or colon. */
const PLAIN_HOST = /^[^\s:/[\]]+$/;
const BRACKETED = /^\[([^\]]*)\](?::(.*))?$/;

/**
 * Parses `host:port`, `[v6]:port`, and, with `defaultPort`, a bare `host`, `v6` or `[v6]`.
 * Pure; the caller words the error for its setting.
 */
export function parseHostPort(text: string, opts: HostPortOptions = {}): HostPortResult {
  const minPort = opts.minPort ?? 1;
  const port = (p: string | undefined): number | HostPortProblem => {
    if (p === undefined) return opts.defaultPort ?? 'form';
    if (!/^\d+$/.test(p)) return 'form';
    return parsePort(p, minPort) ?? 'port';
  };
  const done = (host: string, p: number | HostPortProblem, bracketed: boolean): HostPortResult =>
    typeof p === 'number'
      ? { ok: true, host, port: p, bracketed }
      : { ok: false, problem: p, ...(p === 'port' ? { host } : {}) };

  const b = BRACKETED.exec(text);
  if (b) {
    if (isIP(b[1]!) !== 6) return { ok: false, problem: 'brackets' };
    return done(b[1]!, port(b[2]), true);
  }
  const colons = text.split(':').length - 1;
  if (colons === 1) {
    const i = text.indexOf(':');
    const host = text.slice(0, i);
    if (!PLAIN_HOST.test(host)) return { ok: false, problem: 'form' };
    return done(host, port(text.slice(i + 1)), false);
  }
  // No port: a bare name or address (an IPv6 address has two colons or more).
  if (opts.defaultPort === undefined) return { ok: false, problem: 'form' };
  if (colons === 0 ? !PLAIN_HOST.test(text) : isIP(text) !== 6)
    return { ok: false, problem: 'form' };
  return done(text, opts.defaultPort, false);
}

/**
 * Splits an address already validated as `host:port` (by the configuration): the text after
 * the last colon is the port; brackets around the host are removed.
 */
export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const rawHost = addr.slice(0, i);
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  return { host, port: Number(addr.slice(i + 1)) };
}

/** A port number written as decimal digits, within [minPort, 65535]; undefined otherwise. */
export function parsePort(text: string, minPort: 0 | 1 = 1): number | undefined {
  const n = Number(text);
  return /^\d{1,5}$/.test(text) && n >= minPort && n <= 65535 ? n : undefined;
}
