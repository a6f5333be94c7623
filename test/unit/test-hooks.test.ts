import t from 'tap';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

// ISTIO_AGENT_TEST_HOOKS=1 makes SIGUSR2 stall the event loop (for the watchdog system test);
// without it SIGUSR2 keeps its default action. Each case runs a real child process.

const hooks = path.resolve(__dirname, '../../src/daemon/test-hooks.ts');
const script = `
const { installTestHooks } = require(${JSON.stringify(hooks)});
const pino = require('pino');
installTestHooks(process.env, pino({ level: 'info' }, { write: (s) => process.stderr.write(s) }));
let n = 0;
setInterval(() => process.stdout.write('tick ' + ++n + '\\n'), 20);
process.stdout.write('up\\n');
`;

interface Child {
  ticks: () => number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: (sig: NodeJS.Signals) => void;
  stderr: () => string;
  up: Promise<void>;
}

function child(env: NodeJS.ProcessEnv): Child {
  const p = spawn(process.execPath, ['--import', 'tsx', '-e', script], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let markUp!: () => void;
  const up = new Promise<void>((r) => (markUp = r));
  p.stdout.on('data', (b: Buffer) => {
    out += b.toString();
    if (out.startsWith('up\n')) markUp();
  });
  p.stderr.on('data', (b: Buffer) => {
    err += b.toString();
  });
  return {
    ticks: () => (out.match(/tick/g) ?? []).length,
    exited: new Promise((r) =>
      p.on('exit', (code, signal) => {
        r({ code, signal });
      }),
    ),
    kill: (sig) => {
      p.kill(sig);
    },
    stderr: () => err,
    up,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void t.test(
  'with ISTIO_AGENT_TEST_HOOKS=1, SIGUSR2 blocks the event loop but the process lives',
  async (t) => {
    const c = child({ ...process.env, ISTIO_AGENT_TEST_HOOKS: '1' });
    t.teardown(() => {
      c.kill('SIGKILL');
    });
    await c.up;
    await sleep(200);
    t.ok(c.ticks() > 0, 'the loop was ticking');
    t.match(c.stderr(), /test hooks are enabled/, 'the agent warns that the hooks are on');
    c.kill('SIGUSR2');
    await sleep(300);
    const frozen = c.ticks();
    await sleep(500);
    t.equal(c.ticks(), frozen, 'no tick after SIGUSR2: the event loop is blocked');
    t.match(c.stderr(), /blocking the event loop for good/);
    let exited = false;
    void c.exited.then(() => (exited = true));
    await sleep(50);
    t.notOk(exited, 'the process is still there (as a stuck agent would be)');
    c.kill('SIGKILL');
    t.same(await c.exited, { code: null, signal: 'SIGKILL' });
  },
);

void t.test('without the variable the hook is inert: SIGUSR2 has its default action', async (t) => {
  const env = { ...process.env };
  delete env.ISTIO_AGENT_TEST_HOOKS;
  const c = child(env);
  t.teardown(() => {
    c.kill('SIGKILL');
  });
  await c.up;
  c.kill('SIGUSR2');
  t.same(await c.exited, { code: null, signal: 'SIGUSR2' });
  t.notMatch(c.stderr(), /test hook/);
});

void t.test('any value other than 1 is inert too', async (t) => {
  const c = child({ ...process.env, ISTIO_AGENT_TEST_HOOKS: 'true' });
  t.teardown(() => {
    c.kill('SIGKILL');
  });
  await c.up;
  c.kill('SIGUSR2');
  t.same(await c.exited, { code: null, signal: 'SIGUSR2' });
});
