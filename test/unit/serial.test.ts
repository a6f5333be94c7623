// The one serial queue (src/lib/serial.ts): one piece of work at a time, in order; a failure
// fails only its own piece.
import t from 'tap';
import { SerialQueue } from '../../src/lib/serial';

/** A promise and the functions that settle it. */
function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

void t.test('pieces run one at a time, in the order they were handed in', async (t) => {
  const q = new SerialQueue();
  const events: string[] = [];
  const gates = [deferred(), deferred(), deferred()];
  const results = gates.map((g, i) =>
    q.run(async () => {
      events.push(`start ${i}`);
      await g.promise;
      events.push(`end ${i}`);
      return i * 10;
    }),
  );
  await settle();
  t.same(events, ['start 0'], 'only the first runs');
  gates[2]!.resolve();
  gates[1]!.resolve();
  await settle();
  t.same(events, ['start 0'], 'later pieces wait even when they could finish');
  gates[0]!.resolve();
  t.same(await Promise.all(results), [0, 10, 20], 'each run settles with its own value');
  t.same(events, ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
});

void t.test('a failure fails only its own run; the queue goes on', async (t) => {
  const q = new SerialQueue();
  const order: string[] = [];
  const first = q.run(() => {
    order.push('rejects');
    return Promise.reject(new Error('boom'));
  });
  const second = q.run(() => {
    order.push('throws');
    throw new Error('sync boom');
  });
  const third = q.run(() => {
    order.push('fine');
    return Promise.resolve('ok');
  });
  await t.rejects(first, { message: 'boom' });
  await t.rejects(second, { message: 'sync boom' }, 'a synchronous throw becomes a rejection');
  t.equal(await third, 'ok');
  t.same(order, ['rejects', 'throws', 'fine']);
  t.equal(await q.run(() => Promise.resolve(1)), 1, 'still usable afterwards');
});

void t.test('work handed in while a piece runs waits for it (re-entrant hand-in)', async (t) => {
  const q = new SerialQueue();
  const events: string[] = [];
  let inner: Promise<void> | undefined;
  await q.run(async () => {
    events.push('outer start');
    inner = q.run(() => {
      events.push('inner');
      return Promise.resolve();
    });
    await settle();
    events.push('outer end');
  });
  await inner;
  t.same(events, ['outer start', 'outer end', 'inner']);
});

void t.test('an idle queue starts work at once', async (t) => {
  const q = new SerialQueue();
  let ran = false;
  const p = q.run(() => {
    ran = true;
    return Promise.resolve();
  });
  await p;
  t.equal(ran, true);
  const gate = deferred<string>();
  const started: boolean[] = [];
  const r = q.run(() => {
    started.push(true);
    return gate.promise;
  });
  await settle();
  t.same(started, [true], 'starts without waiting for anything else');
  gate.resolve('done');
  t.equal(await r, 'done');
});
