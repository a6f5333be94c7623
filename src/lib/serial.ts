/**
 * Runs asynchronous work one piece at a time, in the order it was handed in: a piece starts
 * once the one before it has settled. A piece that fails (rejects or throws) fails only its own
 * `run`; the next piece runs as usual.
 *
 *     private readonly queue = new SerialQueue();
 *     reload(): Promise<void> { return this.queue.run(() => this.apply()); }
 */
export class SerialQueue {
  /** Settles when the last piece handed in has settled; never rejects. */
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `work` after every piece handed in before it; settles as `work` does. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const go = (): Promise<T> => work();
    const result = this.tail.then(go, go);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
