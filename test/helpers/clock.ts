// A FakeClock whose sleeps pass at once: time moves by what the code under test sleeps, and each
// sleep is recorded. For loops that poll or retry with `clock.sleep` (waiting for load balancers,
// copying to a VM), where a test checks the waits instead of driving the clock from outside.
import { FakeClock } from '../../src/lib/clock';

export class SteppingClock extends FakeClock {
  /** Every sleep asked for, in order (ms). */
  readonly slept: number[] = [];

  override async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.slept.push(ms);
    await this.advance(ms);
  }
}
