import { isIP } from 'node:net';
import { formatDuration } from '../lib/duration';
import { AgentError, type Origin } from '../lib/errors';

export interface RawValue {
  readonly value: string;
  readonly origin: Origin;
}

/**
 * The merged variables (cluster.env < sidecar.env < environment) with where each came from.
 * Section parsers read through `get`, which records every name read, so a test can check that
 * docs/configuration.md lists each one.
 */
export class RawEnv {
  private readonly values = new Map<string, RawValue>();
  readonly read = new Set<string>();

  set(key: string, value: string, file: string, line: number): void {
    this.values.set(key, { value, origin: { file, line, variable: key } });
  }

  /** The raw value, or undefined when unset. An empty string counts as unset (as `${X:-d}`). */
  get(key: string): RawValue | undefined {
    this.read.add(key);
    const v = this.values.get(key);
    return v && v.value !== '' ? v : undefined;
  }

  /** Where a variable came from; a synthetic origin when it is unset. */
  origin(key: string): Origin {
    return this.values.get(key)?.origin ?? { file: 'default', line: 0, variable: key };
  }

  keys(): string[] {
    return [...this.values.keys()];
  }

  // ---- typed readers; each throws AGENT_E_CONFIG_VALUE naming file, line and variable ----

  fail(key: string, message: string): never {
    throw new AgentError('AGENT_E_CONFIG_VALUE', message, { origin: this.origin(key) });
  }

  str(key: string, def: string): string {
    return this.get(key)?.value ?? def;
  }

  optStr(key: string): string | undefined {
    return this.get(key)?.value;
  }

  oneOf<T extends string>(
    key: string,
    allowed: readonly T[],
    def: T,
    opts: { caseInsensitive?: boolean } = {},
  ): T {
    const v = this.get(key);
    if (!v) return def;
    const found = allowed.find((a) =>
      opts.caseInsensitive ? a.toLowerCase() === v.value.toLowerCase() : a === v.value,
    );
    if (found === undefined) this.fail(key, `"${v.value}" is not one of ${allowed.join(', ')}`);
    return found;
  }

  int(key: string, def: number, min: number, max: number): number {
    const v = this.get(key);
    if (!v) return def;
    if (!/^\d+$/.test(v.value)) this.fail(key, `"${v.value}" is not a whole number`);
    const n = Number(v.value);
    if (n < min || n > max) this.fail(key, `${n} is out of range ${min}..${max}`);
    return n;
  }

  port(key: string, def: number): number {
    return this.int(key, def, 1, 65535);
  }

  bool(key: string, def: boolean): boolean {
    const v = this.get(key);
    if (!v) return def;
    const s = v.value.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off'].includes(s)) return false;
    return this.fail(key, `"${v.value}" is not a boolean (true/false)`);
  }

  /**
   * A Go-style duration ("90s", "15m", "2160h", "1h30m"), or plain seconds, in [minMs, maxMs].
   * Returns ms. Every duration has a maximum, checked here, so no value can overflow a timer
   * (setTimeout and AbortSignal.timeout take at most 2^31-1 ms, about 24.8 days) later.
   */
  duration(key: string, defMs: number, minMs: number, maxMs: number): number {
    const v = this.get(key);
    if (!v) return defMs;
    const ms = parseDuration(v.value);
    if (ms === undefined) this.fail(key, `"${v.value}" is not a duration (e.g. 30s, 15m, 2160h)`);
    if (ms < minMs)
      this.fail(key, `${v.value} is shorter than the minimum ${formatDuration(minMs)}`);
    if (ms > maxMs)
      this.fail(key, `${v.value} is longer than the maximum ${formatDuration(maxMs)}`);
    return ms;
  }

  /** A fraction in [min, max], e.g. 0.5. */
  ratio(key: string, def: number, min: number, max: number): number {
    const v = this.get(key);
    if (!v) return def;
    const n = Number(v.value);
    if (!/^\d*\.?\d+$/.test(v.value) || !Number.isFinite(n))
      this.fail(key, `"${v.value}" is not a number`);
    if (n < min || n > max) this.fail(key, `${n} is out of range ${min}..${max}`);
    return n;
  }

  ip(key: string): string | undefined {
    const v = this.get(key);
    if (!v) return undefined;
    if (v.value.includes('%'))
      this.fail(key, `"${v.value}" has an IPv6 zone index; give the address without it`);
    if (!isIP(v.value)) this.fail(key, `"${v.value}" is not an IPv4 or IPv6 address`);
    return v.value;
  }

  /** Comma-separated list, entries trimmed, empties dropped. */
  list(key: string): string[] {
    const v = this.get(key);
    if (!v) return [];
    return v.value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : total;
}
