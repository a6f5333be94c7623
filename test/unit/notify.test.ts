import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  createNotifier,
  spawnTransport,
  statusLine,
  superseded,
  watchdogInterval,
} from '../../src/systemd/notify';
import { testLogger } from '../helpers/deps';
import { tmpDir } from '../helpers/tmp';

void t.test('sends nothing when NOTIFY_SOCKET is unset', async (t) => {
  const sent: string[][] = [];
  const n = createNotifier({}, testLogger({ level: 'trace' }).log, (f) => {
    sent.push([...f]);
    return Promise.resolve();
  });
  await n.ready('x');
  await n.watchdog();
  t.equal(n.enabled, false);
  t.equal(n.watchdogMs, undefined);
  t.same(sent, []);
});

void t.test('sends each message with the sd_notify fields systemd expects', async (t) => {
  const sent: string[][] = [];
  const n = createNotifier(
    { NOTIFY_SOCKET: '/run/systemd/notify' },
    testLogger({ level: 'trace' }).log,
    (f) => {
      sent.push([...f]);
      return Promise.resolve();
    },
  );
  await n.status('starting');
  await n.ready('cert valid; capture on');
  await n.watchdog();
  await n.reloading(123456789n);
  await n.ready();
  await n.stopping();
  t.same(sent, [
    ['STATUS=starting'],
    ['READY=1', 'STATUS=cert valid; capture on'],
    ['WATCHDOG=1'],
    ['RELOADING=1', 'MONOTONIC_USEC=123456789'],
    ['READY=1'],
    ['STOPPING=1'],
  ]);
});

void t.test('keeps call order even when an earlier send is slower', async (t) => {
  const sent: string[] = [];
  const n = createNotifier({ NOTIFY_SOCKET: '@x' }, testLogger({ level: 'trace' }).log, (f) => {
    const delay = f[0] === 'RELOADING=1' ? 30 : 0;
    return new Promise((r) =>
      setTimeout(() => {
        sent.push(f[0]!);
        r();
      }, delay),
    );
  });
  // Not awaited one by one: the agent fires STATUS= from events while a reload is under way.
  await Promise.all([n.reloading(1n), n.ready('ok'), n.status('later')]);
  t.same(sent, ['RELOADING=1', 'READY=1', 'STATUS=later']);
});

void t.test('superseded: a waiting STATUS= alone, when a later message has a STATUS=', (t) => {
  const pending = [
    ['STATUS=a'],
    ['WATCHDOG=1'],
    ['STATUS=b'],
    ['RELOADING=1', 'MONOTONIC_USEC=1'],
    ['READY=1', 'STATUS=c'],
  ];
  t.same(superseded(pending, ['STATUS=d']), [0, 2], 'only the STATUS= alone');
  t.same(superseded(pending, ['READY=1', 'STATUS=d']), [0, 2]);
  t.same(superseded(pending, ['READY=1']), [], 'a message without STATUS= replaces none');
  t.same(superseded(pending, ['WATCHDOG=1']), []);
  t.same(superseded([], ['STATUS=x']), []);
  t.end();
});

void t.test(
  'statuses queued behind a send are not sent once a later one replaces them; every caller resolves',
  async (t) => {
    const sent: string[][] = [];
    const inFlight: (() => void)[] = [];
    const n = createNotifier({ NOTIFY_SOCKET: '@x' }, testLogger({ level: 'trace' }).log, (f) => {
      sent.push([...f]);
      return new Promise((r) => inFlight.push(r));
    });
    const calls = [
      n.status('starting'),
      n.status('starting; waiting for certs'),
      n.status('starting; cert valid'),
      n.watchdog(),
      n.status('starting; cert valid; capture on'),
      n.ready('cert valid; capture on'),
    ];
    await new Promise((r) => setImmediate(r));
    t.same(sent, [['STATUS=starting']], 'the first is on its way');
    for (let i = 0; i < 10; i++) {
      inFlight.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    t.same(sent, [
      ['STATUS=starting'],
      ['WATCHDOG=1'],
      ['READY=1', 'STATUS=cert valid; capture on'],
    ]);
    await Promise.all(calls);
    t.pass('every call resolved, the replaced ones included');
  },
);

void t.test(
  'a failing transport is a warning with AGENT_E_NOTIFY, never a rejection',
  async (t) => {
    const { log, records } = testLogger({ level: 'trace' });
    const n = createNotifier({ NOTIFY_SOCKET: '@x' }, log, () => Promise.reject(new Error('boom')));
    await n.ready('x');
    await n.watchdog();
    const warns = records.filter((r) => r.level === 'warn');
    t.equal(warns.length, 2);
    t.equal(warns[0]!.code, 'AGENT_E_NOTIFY');
    t.match(warns[0]!.err, /boom/);
  },
);

void t.test('watchdogInterval reads WATCHDOG_USEC only when it is meant for this process', (t) => {
  t.equal(watchdogInterval({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '30000000' }, 42), 30_000);
  t.equal(
    watchdogInterval({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42),
    30_000,
  );
  t.equal(
    watchdogInterval({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '41' }, 42),
    undefined,
  );
  t.equal(watchdogInterval({ WATCHDOG_USEC: '30000000' }, 42), undefined, 'no socket, no watchdog');
  t.equal(watchdogInterval({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '0' }, 42), undefined);
  t.equal(watchdogInterval({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: 'abc' }, 42), undefined);
  t.equal(
    watchdogInterval({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '500' }, 42),
    1,
    'sub-millisecond rounds up to 1 ms',
  );
  t.end();
});

void t.test('statusLine keeps STATUS= on one printable line of bounded length', (t) => {
  t.equal(statusLine('a\nb\tc\x00d'), 'a b c d');
  t.equal(statusLine('x'.repeat(1000)).length, 400);
  t.end();
});

void t.test('spawnTransport runs the program with one argument per field', async (t) => {
  const dir = tmpDir(t, 'ship-notify-', { mode: 0o700 });
  const out = path.join(dir, 'args');
  const fake = path.join(dir, 'systemd-notify');
  writeFileSync(fake, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> '${out}'; done\n`);
  chmodSync(fake, 0o755);
  await spawnTransport(fake)(['READY=1', 'STATUS=cert ok; capture on']);
  t.equal(readFileSync(out, 'utf8'), 'READY=1\nSTATUS=cert ok; capture on\n');

  const failing = path.join(dir, 'fails');
  writeFileSync(failing, '#!/bin/sh\necho "no socket" >&2\nexit 1\n');
  chmodSync(failing, 0o755);
  await t.rejects(spawnTransport(failing)(['READY=1']), /exited 1: no socket/);
  await t.rejects(spawnTransport(path.join(dir, 'missing'))(['READY=1']), { code: 'ENOENT' });

  const hangs = path.join(dir, 'hangs');
  writeFileSync(hangs, '#!/bin/sh\nexec sleep 30\n');
  chmodSync(hangs, 0o755);
  await t.rejects(spawnTransport(hangs, 200)(['WATCHDOG=1']), /killed after 200 ms/);
});
