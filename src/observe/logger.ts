import pino from 'pino';

/**
 * The agent's logger: pino, one JSON record per line on stdout, a `component` field on every
 * record. Under systemd (JOURNAL_STREAM set) each line starts with the syslog priority `<N>`, so
 * `journalctl -p warning` filters by level. Keys and tokens never reach a log: the redact list
 * below is a safety net, not the mechanism (code never passes secrets to a logger).
 */
export type Logger = pino.Logger;
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** syslog priorities journald understands (sd-daemon.h). */
export const JOURNAL_PRIORITY: Record<LogLevel, number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warn: 4,
  error: 3,
  fatal: 2,
};

export const REDACT_PATHS = [
  'key',
  'privateKey',
  'token',
  'jwt',
  'authorization',
  '*.key',
  '*.privateKey',
  '*.token',
  '*.jwt',
  '*.authorization',
];

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** Prefix each line with `<N>` for journald; default: when JOURNAL_STREAM is set. */
  readonly journal?: boolean;
  /** Where lines go; default stdout (fd 1). */
  readonly write?: (line: string) => void;
  /** Human-readable lines for a terminal (dev mode) instead of JSON. */
  readonly pretty?: boolean;
  /** Colour the level of pretty lines (a terminal that is not NO_COLOR). */
  readonly color?: boolean;
}

/** Whether a stream is a terminal that takes colour (https://no-color.org). */
export function wantsColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const journal = options.journal ?? Boolean(process.env.JOURNAL_STREAM);
  const opts: pino.LoggerOptions = {
    level: options.level ?? 'info',
    // journald records time, pid and host itself; keep the time when not under the journal.
    base: undefined,
    timestamp: journal ? false : pino.stdTimeFunctions.isoTime,
    messageKey: 'msg',
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const raw = options.write ?? stdoutWriter();
  const sink = options.pretty
    ? (s: string) => {
        raw(prettyLine(s, options.color ?? false));
      }
    : raw;
  if (!journal) return pino(opts, { write: sink });
  const streams = (Object.keys(JOURNAL_PRIORITY) as LogLevel[]).map((level) => ({
    level,
    stream: {
      write: (s: string) => {
        sink(`<${JOURNAL_PRIORITY[level]}>${s}`);
      },
    },
  }));
  return pino(opts, pino.multistream(streams, { dedupe: true }));
}

const LEVEL_TAG: Record<string, string> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO ',
  warn: 'WARN ',
  error: 'ERROR',
  fatal: 'FATAL',
};

/** ANSI colours of the level tags: red for errors, yellow for warnings, dim for debug. */
const LEVEL_COLOR: Record<string, string> = {
  trace: '\x1b[2m',
  debug: '\x1b[2m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[1;31m',
};

/** `08:50:51.123 INFO  [certs] message key=value …` from one JSON record. */
export function prettyLine(json: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, time, component, msg, ...rest } = rec;
  const t = typeof time === 'string' ? time.slice(11, 23) : new Date().toISOString().slice(11, 23);
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const plain = LEVEL_TAG[String(level)] ?? String(level);
  const on = color ? LEVEL_COLOR[String(level)] : undefined;
  const tag = on ? `${on}${plain}\x1b[0m` : plain;
  return `${t} ${tag} [${typeof component === 'string' ? component : '-'}] ${typeof msg === 'string' ? msg : ''}${fields ? `  ${fields}` : ''}\n`;
}

function stdoutWriter(): (line: string) => void {
  const dest = pino.destination({ dest: 1, sync: true });
  return (s) => dest.write(s);
}

/** A logger that drops everything, for tests and quiet commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
