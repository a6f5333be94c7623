/**
 * The sidecar's stdout and stderr, forwarded line by line through the agent's logger, so each
 * line reaches the journal as a structured record tagged `component: sidecar` with its stream,
 * program, epoch and a journald priority taken from the line's own level; a shared rate limit
 * keeps a chatty or crash-looping sidecar from drowning the agent's own records.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { Clock, TimerHandle } from '../lib/clock';
import type { Logger } from '../observe/index';

/** Longest line forwarded as one record; longer ones are cut (the rest is dropped). */
export const MAX_LINE_BYTES = 8192;

/** Splits a byte stream into lines; handles UTF-8 across chunk borders, CRLF and very long lines. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  private skipping = false;

  /** Complete lines in this chunk (without their line ends). */
  push(chunk: Buffer | string): string[] {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const out: string[] = [];
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      out.push(cut(line));
    }
    if (this.buf.length > MAX_LINE_BYTES) {
      if (!this.skipping) out.push(cut(this.buf));
      this.buf = '';
      this.skipping = true; // drop the rest of this overlong line
    }
    return out;
  }

  /** What is left at end of stream. */
  end(): string[] {
    const rest = this.buf + this.decoder.end();
    this.buf = '';
    return rest === '' || this.skipping ? [] : [cut(rest.replace(/\r$/, ''))];
  }
}

function cut(line: string): string {
  return line.length > MAX_LINE_BYTES ? `${line.slice(0, MAX_LINE_BYTES)} …[truncated]` : line;
}

/** At most `limit` lines per fixed window of `windowMs`; counts what it refuses. */
export class LineLimiter {
  private windowStart: number;
  private count = 0;
  private dropped = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {
    this.windowStart = clock.now();
  }

  /** True when the line may be forwarded. limit 0 = no limit. */
  admit(): boolean {
    if (this.limit <= 0) return true;
    this.roll();
    if (this.count < this.limit) {
      this.count++;
      return true;
    }
    this.dropped++;
    return false;
  }

  /** Lines refused since the last call. */
  takeDropped(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }

  /** When the current window ends. */
  get windowEnd(): number {
    return this.windowStart + this.windowMs;
  }

  private roll(): void {
    const now = this.clock.now();
    if (now >= this.windowStart + this.windowMs) {
      this.windowStart = now;
      this.count = 0;
    }
  }
}

export type ChildLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * The level of an envoy line (`[2018-07-31 12:00:00.000][17][warning][config] …`) or of a Go
 * istio log line from pilot-agent (`2018-07-31T12:00:00.000000Z\twarn\t…`); undefined otherwise.
 */
export function childLineLevel(line: string): ChildLevel | undefined {
  const m = /^\[[^\]]*\]\[\d+\]\[(\w+)\]/.exec(line) ?? /^\S+\t(\w+)\t/.exec(line);
  if (!m) return undefined;
  switch (m[1]!.toLowerCase()) {
    case 'trace':
    case 'debug':
      return 'debug';
    case 'info':
      return 'info';
    case 'warn':
    case 'warning':
      return 'warn';
    case 'error':
    case 'err':
    case 'critical':
    case 'fatal':
    case 'panic':
      return 'error';
    default:
      return undefined;
  }
}

/**
 * Forwards child output to the log under one shared limit, and reports suppressed lines in one
 * record per window ("N lines of sidecar output suppressed") as soon as the window closes.
 */
export class OutputForwarder {
  private readonly limiter: LineLimiter;
  private flushTimer: TimerHandle | undefined;

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
    linesPerMinute: number,
  ) {
    this.limiter = new LineLimiter(linesPerMinute, 60_000, clock);
  }

  /** Forwards `stream` until it ends; `fields` tag every record (stream, proxy, epoch, pid). */
  attach(stream: Readable | null, fields: Record<string, unknown>): void {
    if (!stream) return;
    const split = new LineSplitter();
    const log = this.log.child(fields);
    stream.on('data', (b: Buffer) => {
      for (const line of split.push(b)) this.line(log, line);
    });
    stream.on('end', () => {
      for (const line of split.end()) this.line(log, line);
    });
    stream.on('error', () => undefined);
  }

  /** Reports what is still counted as suppressed; call when the sidecar is stopped. */
  close(): void {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    this.reportDropped();
  }

  line(log: Logger, text: string): void {
    if (text.trim() === '') return;
    if (!this.limiter.admit()) {
      this.flushTimer ??= this.clock.setTimeout(
        () => {
          this.flushTimer = undefined;
          this.reportDropped();
        },
        Math.max(0, this.limiter.windowEnd - this.clock.now()),
      );
      return;
    }
    if (this.flushTimer) {
      this.flushTimer.cancel();
      this.flushTimer = undefined;
    }
    this.reportDropped();
    log[childLineLevel(text) ?? 'info'](text);
  }

  private reportDropped(): void {
    const n = this.limiter.takeDropped();
    if (n > 0) {
      this.log.warn(
        { suppressed: n },
        `${n} lines of sidecar output suppressed (more than the limit per minute, ISTIO_PROXY_LOG_LINES_PER_MINUTE)`,
      );
    }
  }
}
