/**
 * Injected time. Components never call Date.now() or setTimeout directly, so tests can advance a
 * FakeClock instead of sleeping.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Microseconds on the monotonic clock (CLOCK_MONOTONIC, what systemd's MONOTONIC_USEC means):
   * never goes back, unrelated to now().
   */
  monotonicUs(): bigint;
  /** Runs `fn` after `ms`. Delays beyond setTimeout's 2^31-1 ms limit are chained. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  // process.hrtime reads CLOCK_MONOTONIC (nanoseconds).
  monotonicUs: () => process.hrtime.bigint() / 1000n,
  setTimeout(fn, ms) {
    let t: NodeJS.Timeout;
    let cancelled = false;
    const arm = (left: number): void => {
      const step = Math.min(Math.max(0, left), MAX_TIMEOUT_MS);
      t = setTimeout(() => {
        if (cancelled) return;
        if (left > MAX_TIMEOUT_MS) arm(left - MAX_TIMEOUT_MS);
        else fn();
      }, step);
    };
    arm(ms);
    return {
      cancel() {
        cancelled = true;
        clearTimeout(t);
      },
    };
  },
  sleep(ms, signal) {
    return sleepWith(systemClock, ms, signal);
  },
};

export function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      h.cancel();
      reject(signal?.reason as Error);
    };
    const h = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A clock for tests: time moves only when `advance` is called. */
export class FakeClock implements Clock {
  /** The monotonic clock at construction: as if the host had been up for an hour. */
  static readonly MONOTONIC_START_US = 3_600_000_000n;
  private t: number;
  private readonly start: number;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.start = start;
  }

  now(): number {
    return this.t;
  }

  /** Moves with now(), from MONOTONIC_START_US. */
  monotonicUs(): bigint {
    return FakeClock.MONOTONIC_START_US + BigInt(Math.round((this.t - this.start) * 1000));
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const entry = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(entry);
    return {
      cancel: () => {
        this.timers = this.timers.filter((x) => x !== entry);
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.timers.length;
  }

  /** When the next timer fires, or undefined. */
  nextAt(): number | undefined {
    return this.timers.reduce<number | undefined>(
      (m, x) => (m === undefined || x.at < m ? x.at : m),
      undefined,
    );
  }

  /**
   * Moves time forward by `ms`, firing due timers in order. Awaits a macrotask between timers so
   * promise chains started by one timer can schedule the next.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await flush();
  }
}

function flush(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
