import t, { type Test } from 'tap';
import type { Component, ComponentDeps } from '../../src/component';
import { runDaemon } from '../../src/daemon/runner';
import { AgentError } from '../../src/lib/errors';
import { silentLogger } from '../../src/observe/logger';
import { createNotifier } from '../../src/systemd/notify';
import { testConfig } from '../helpers/config';
import { tmpDir } from '../helpers/tmp';

/** A component that records what the daemon tells it, in the order it happens. */
function recording(events: string[], opts: { failStart?: boolean } = {}) {
  let deps: ComponentDeps | undefined;
  const component: Component = {
    name: 'certs',
    preflight: () => Promise.resolve(),
    start() {
      events.push('start');
      deps?.events.on('agent-ready', () => events.push('agent-ready'));
      return opts.failStart
        ? Promise.reject(new AgentError('AGENT_E_IPTABLES_APPLY', 'broke'))
        : Promise.resolve();
    },
    reload: () => Promise.resolve(),
    stop() {
      events.push('stop');
      return Promise.resolve();
    },
    status: () => ({ ready: true, summary: 'certs on' }),
  };
  return {
    build: (d: ComponentDeps): Promise<Component[]> => {
      deps = d;
      return Promise.resolve([component]);
    },
  };
}

function spec(t: Test, events: string[], failStart = false) {
  const config = testConfig({
    ISTIO_AGENT_STATE_DIR: tmpDir(t, 'runner'),
    ISTIO_AGENT_MONITORING_ADDR: 'off',
  });
  const notifier = createNotifier({ NOTIFY_SOCKET: '/run/x' }, silentLogger(), (fields) => {
    if (fields.includes('READY=1')) events.push('READY=1');
    return Promise.resolve();
  });
  return {
    config,
    log: silentLogger(),
    env: {},
    notifier,
    once: true,
    ...recording(events, { failStart }),
  };
}

t.test('the daemon emits agent-ready once READY=1 is sent, before it stops', async (t) => {
  const events: string[] = [];
  t.equal(await runDaemon(spec(t, events)), 0);
  t.same(events, ['start', 'READY=1', 'agent-ready', 'stop']);
});

t.test('a start that fails never emits agent-ready', async (t) => {
  const events: string[] = [];
  t.equal(await runDaemon(spec(t, events, true)), 1);
  t.same(events, ['start', 'stop'], 'undone; no READY=1, no agent-ready');
});
