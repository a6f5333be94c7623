// The state directory's lock (src/lib/lock.ts): never through a symlink, never in a directory
// someone else can write, freed by the kernel when the holder dies.
import t from 'tap';
import { tmpDir } from '../helpers/tmp';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import {
  acquireLock,
  AGENT_LOCK,
  HOST_LOCKS,
  isAgentCommandLine,
  withHostLock,
} from '../../src/lib/lock';

t.test('a second holder is refused, or waits, and gets it once the first lets go', async (t) => {
  const dir = path.join(tmpDir(t, 'lock-', { mode: 0o700 }), 'state');
  const first = await acquireLock(dir, AGENT_LOCK, { holder: 'test one' });
  t.equal(readFileSync(first.file, 'utf8'), `${process.pid} test one\n`, 'pid and holder recorded');
  await t.rejects(acquireLock(dir, AGENT_LOCK, { holder: 'test two' }), {
    code: 'AGENT_E_ALREADY_RUNNING',
    message: new RegExp(`held by pid ${process.pid} \\(test one\\)`),
  });
  await t.rejects(acquireLock(dir, AGENT_LOCK, { holder: 'test two', waitMs: 200 }), {
    code: 'AGENT_E_LOCK_TIMEOUT',
  });
  const waiting = acquireLock(dir, AGENT_LOCK, { holder: 'test three', waitMs: 60_000 });
  await first.release();
  const third = await waiting;
  t.equal(readFileSync(third.file, 'utf8'), `${process.pid} test three\n`, 'the waiter got it');
  await third.release();
});

t.test('a holder killed with SIGKILL leaves no stale lock', async (t) => {
  const dir = path.join(tmpDir(t, 'lock-', { mode: 0o700 }), 'state');
  mkdirSync(dir, { mode: 0o755 });
  const file = path.join(dir, HOST_LOCKS.capture);
  writeFileSync(file, '');
  const holder = spawn('flock', ['--exclusive', '--no-fork', file, 'sleep', '600'], {
    stdio: 'ignore',
  });
  // Wait until the holder has it.
  for (let i = 0; i < 200; i++) {
    const r = await acquireLock(dir, HOST_LOCKS.capture, { holder: 'probe' }).then(
      async (l) => {
        await l.release();
        return 'free';
      },
      () => 'held',
    );
    if (r === 'held') break;
    await new Promise((r) => setTimeout(r, 25));
  }
  await t.rejects(acquireLock(dir, HOST_LOCKS.capture, { holder: 'test' }), {
    code: 'AGENT_E_ALREADY_RUNNING',
  });
  const gone = new Promise((r) => holder.once('exit', r));
  holder.kill('SIGKILL');
  await gone;
  const lock = await acquireLock(dir, HOST_LOCKS.capture, { holder: 'test' });
  t.pass('taken at once after the holder died');
  await lock.release();
});

t.test('host locks: capture and DNS do not wait for each other; two of a kind do', async (t) => {
  const dir = path.join(tmpDir(t, 'lock-', { mode: 0o700 }), 'state');
  const order: string[] = [];
  let letGo!: () => void;
  const held = new Promise<void>((r) => (letGo = r));
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  const first = withHostLock(dir, 'capture', 'capture one', async () => {
    order.push('capture 1 in');
    entered();
    await held;
    order.push('capture 1 out');
  });
  await inside;
  await withHostLock(dir, 'dns', 'dns', () => {
    order.push('dns');
    return Promise.resolve();
  });
  const second = withHostLock(dir, 'capture', 'capture two', () => {
    order.push('capture 2');
    return Promise.resolve();
  });
  await new Promise((r) => setTimeout(r, 300));
  t.same(order, ['capture 1 in', 'dns'], 'DNS ran while capture held its lock; capture 2 waits');
  letGo();
  await Promise.all([first, second]);
  t.same(order, ['capture 1 in', 'dns', 'capture 1 out', 'capture 2']);
  t.same(
    [HOST_LOCKS.capture, HOST_LOCKS.dns].map((f) => readFileSync(path.join(dir, f), 'utf8')),
    [`${process.pid} capture two\n`, `${process.pid} dns\n`],
    'each kind in its own file',
  );
});

t.test('a symlink at the lock path is refused and its target untouched', async (t) => {
  const base = tmpDir(t, 'lock-', { mode: 0o700 });
  const dir = path.join(base, 'state');
  mkdirSync(dir, { mode: 0o755 });
  const victim = path.join(base, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, path.join(dir, AGENT_LOCK));
  await t.rejects(acquireLock(dir, AGENT_LOCK, { holder: 'test' }), {
    code: 'AGENT_E_UNSAFE_PATH',
    message: /symlink/,
  });
  t.equal(readFileSync(victim, 'utf8'), 'precious\n');
});

t.test(
  'a state directory others can write is refused; a trusted symlink is followed',
  async (t) => {
    const base = tmpDir(t, 'lock-', { mode: 0o700 });
    const open = path.join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await t.rejects(acquireLock(open, AGENT_LOCK, { holder: 'test' }), {
      code: 'AGENT_E_UNSAFE_PATH',
      message: /writable by every user/,
    });
    const real = path.join(base, 'real');
    mkdirSync(real, { mode: 0o755 });
    symlinkSync(real, path.join(base, 'link'));
    const lock = await acquireLock(path.join(base, 'link'), AGENT_LOCK, { holder: 'test' });
    t.ok(existsSync(path.join(real, AGENT_LOCK)), 'the lock is in the directory the link names');
    await lock.release();
  },
);

t.test('a pid is taken for the daemon only when it runs istio-node-agent', async (t) => {
  const cmd = (...argv: string[]): string => argv.join('\0') + '\0';
  for (const [argv, want] of [
    [['/usr/bin/istio-node-agent', 'run'], true],
    [['istio-node-agent', 'dev'], true],
    [['node', '/home/me/agent/dist/istio-node-agent.cjs', 'dev'], true],
    [['node', '--import', 'tsx', '/src/agent/src/main.ts', 'run'], true],
    [['/usr/sbin/sshd', '-D'], false],
    [['bash', '-c', 'echo istio-node-agent'], false],
    [['/usr/bin/istio-node-agent-old', 'run'], false],
    [[], false],
  ] as const) {
    t.equal(isAgentCommandLine(cmd(...argv)), want, argv.join(' ') || '(empty)');
  }
});
