// One set of component dependencies for tests: the real logger writing parsed records into an
// array (as pino's own tests assert on records, not on text), an injected clock and randomness,
// and the agent's callbacks and events recorded. TEST_LOG=1 also prints every record to stderr.
import { EventEmitter } from 'node:events';
import type { AgentEventMap, ComponentDeps } from '../../src/component';
import { systemClock, type Clock } from '../../src/lib/clock';
import { exec as realExec, type Exec } from '../../src/lib/exec';
import { createLogger, type Logger, type LogLevel } from '../../src/observe/index';

/** One log record as pino wrote it, parsed. */
export interface LogRecord {
  readonly level: string;
  readonly msg: string;
  readonly component?: string;
  readonly code?: string;
  readonly [k: string]: unknown;
}

export interface TestDeps extends ComponentDeps {
  /** Every record logged, in order. */
  readonly records: LogRecord[];
  /** Errors passed to `fatal`. */
  readonly fatals: Error[];
  /** How often a component said its status changed. */
  readonly changes: { count: number };
  /** Every `certs-rotated` event, in order. */
  readonly rotations: AgentEventMap['certs-rotated'][0][];
  /** The records of one component, or with one message. */
  logged(filter: { component?: string; level?: string; msg?: RegExp }): LogRecord[];
}

export interface TestDepsOptions {
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly exec?: Exec;
  readonly level?: LogLevel;
  /** Rethrow what reaches `fatal` (a test that expects none). */
  readonly throwOnFatal?: boolean;
  /** Also write every record to stderr (as TEST_LOG=1 does), e.g. in a child process. */
  readonly echo?: boolean;
  /** Called at each `changed()`, after it is counted (e.g. to wake a test waiting for one). */
  readonly onChange?: () => void;
}

/** The real logger alone, writing parsed records into `records` (echoed as in `testDeps`). */
export function testLogger(o: { level?: LogLevel; echo?: boolean } = {}): {
  log: Logger;
  records: LogRecord[];
} {
  const records: LogRecord[] = [];
  const log = createLogger({
    level: o.level ?? 'debug',
    journal: false,
    write: (s) => {
      records.push(JSON.parse(s) as LogRecord);
      if (o.echo || process.env.TEST_LOG) process.stderr.write(s);
    },
  });
  return { log, records };
}

export function testDeps(o: TestDepsOptions = {}): TestDeps {
  const { log, records } = testLogger(o);
  const fatals: Error[] = [];
  const changes = { count: 0 };
  const rotations: AgentEventMap['certs-rotated'][0][] = [];
  const events = new EventEmitter<AgentEventMap>();
  events.on('certs-rotated', (i) => rotations.push(i));
  return {
    log,
    clock: o.clock ?? systemClock,
    random: o.random ?? (() => 0.5),
    exec: o.exec ?? realExec,
    events,
    fatal: (e) => {
      fatals.push(e);
      if (o.throwOnFatal) throw e;
    },
    changed: () => {
      changes.count++;
      o.onChange?.();
    },
    records,
    fatals,
    changes,
    rotations,
    logged: (f) =>
      records.filter(
        (r) =>
          (f.component === undefined || r.component === f.component) &&
          (f.level === undefined || r.level === f.level) &&
          (f.msg === undefined || f.msg.test(r.msg)),
      ),
  };
}
