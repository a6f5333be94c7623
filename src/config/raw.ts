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
 * docs/configuration.md lists each one, and the loader can name the nearest known variable for
 * one it does not know.
 *
 * A bad value does not stop the reading: the typed readers record an AGENT_E_CONFIG_VALUE
 * problem (`problems`) and return the default, so every bad value of a file is found in one run;
 * buildConfig throws them together, in file and line order.
 */
export class RawEnv {
  private readonly values = new Map<string, RawValue>();
  readonly read = new Set<string>();
  /** Bad values found so far, in the order they were read. */
  readonly problems: AgentError[] = [];

  /**
   * `variable` names the value in messages when it is not the variable itself, e.g. the
   * command-line option `--ttl` that set WORKLOAD_CERT_TTL.
   */
  set(key: string, value: string, file: string, line: number, variable = key): void {
    this.values.set(key, { value, origin: { file, line, variable } });
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

  // ---- typed readers; each records AGENT_E_CONFIG_VALUE naming file, line and variable ----

  /** Records a bad value of `key`; the caller goes on (with the default). */
  report(key: string, message: string): void {
    this.problems.push(
      new AgentError('AGENT_E_CONFIG_VALUE', message, { origin: this.origin(key) }),
    );
  }

  /** Records a bad value of `key` and throws it (buildConfig goes on with the next section). */
  fail(key: string, message: string): never {
    this.report(key, message);
    throw this.problems[this.problems.length - 1]!;
  }

  /** Records a bad value of `key` and returns `def` in its place. */
  private bad<T>(key: string, message: string, def: T): T {
    this.report(key, message);
    return def;
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
    if (found === undefined) return this.bad(key, notOneOf(v.value, allowed), def);
    return found;
  }

  int(key: string, def: number, min: number, max: number): number {
    const v = this.get(key);
    if (!v) return def;
    if (!/^\d+$/.test(v.value)) return this.bad(key, `"${v.value}" is not a whole number`, def);
    const n = Number(v.value);
    if (n < min || n > max) return this.bad(key, `${n} is out of range ${min}..${max}`, def);
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
    return this.bad(key, `"${v.value}" is not a boolean (true/false)`, def);
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
    if (ms === undefined)
      return this.bad(key, `"${v.value}" is not a duration (e.g. 30s, 15m, 2160h)`, defMs);
    if (ms < minMs)
      return this.bad(
        key,
        `${v.value} is shorter than the minimum ${formatDuration(minMs)}`,
        defMs,
      );
    if (ms > maxMs)
      return this.bad(key, `${v.value} is longer than the maximum ${formatDuration(maxMs)}`, defMs);
    return ms;
  }

  /** A fraction in [min, max], e.g. 0.5. */
  ratio(key: string, def: number, min: number, max: number): number {
    const v = this.get(key);
    if (!v) return def;
    const n = Number(v.value);
    if (!/^\d*\.?\d+$/.test(v.value) || !Number.isFinite(n))
      return this.bad(key, `"${v.value}" is not a number`, def);
    if (n < min || n > max) return this.bad(key, `${n} is out of range ${min}..${max}`, def);
    return n;
  }

  ip(key: string): string | undefined {
    const v = this.get(key);
    if (!v) return undefined;
    const problem = v.value.includes('%')
      ? `"${v.value}" has an IPv6 zone index; give the address without it`
      : isIP(v.value)
        ? undefined
        : `"${v.value}" is not an IPv4 or IPv6 address`;
    if (problem === undefined) return v.value;
    this.report(key, problem);
    return undefined;
  }

  /**
   * Comma-separated list, entries trimmed, empties dropped. Entries separated by `;` or blanks
   * instead are refused (empty list) with the list as it should be written.
   */
  list(key: string): string[] {
    const v = this.get(key);
    if (!v) return [];
    const items = v.value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (items.some((s) => /[;\s]/.test(s))) {
      const fixed = v.value
        .split(/[;,\s]+/)
        .filter((s) => s !== '')
        .join(',');
      return this.bad(key, `"${v.value}": lists are comma-separated (write ${fixed})`, []);
    }
    return items;
  }
}

/** `"Foo" is not one of A, B`, with the right spelling when only the case differs. */
function notOneOf(value: string, allowed: readonly string[]): string {
  const same = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  return same !== undefined
    ? `"${value}" is not one of ${allowed.join(', ')} (the case matters: write ${same})`
    : `"${value}" is not one of ${allowed.join(', ')}`;
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
