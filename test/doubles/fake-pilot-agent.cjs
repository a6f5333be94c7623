#!/usr/bin/env node
'use strict';
/*
 * TEST DOUBLE for Istio 1.0's pilot-agent. It is not pilot-agent: it accepts `pilot-agent proxy
 * [flags]` as 1.0.1's istio-start.sh called it, records its argv, environment and ids, writes a
 * minimal bootstrap `envoy-rev0.json` (admin port, node id from INSTANCE_IP/POD_NAME/
 * POD_NAMESPACE as pilot-agent builds it) and runs `<dir of argv[1]>/envoy` (or --binaryPath)
 * as its child with stdio inherited, the way pilot-agent runs envoy. Self-contained (Node
 * built-ins only) so it runs as any user.
 *
 * Flags (Go style, `--f v`, `--f=v`, `-f v`): --serviceCluster, --discoveryAddress,
 *   --controlPlaneAuthPolicy, --proxyAdminPort (15000), --binaryPath, --configPath,
 *   --drainDuration, --parentShutdownDuration; unknown flags are accepted (cobra's whitelist).
 * Behaviour: SIGTERM/SIGINT kill envoy (SIGKILL, as 1.0's abort) and exit 0. envoy exiting
 *   makes the double exit 1 (pilot-agent 1.0 retried first; the supervisor above is under test).
 * Test controls (environment):
 *   FAKE_PILOT_AGENT_RECORD_DIR   write <dir>/pilot-agent-<pid>.json
 *   FAKE_PILOT_AGENT_CRASH_FILE   exit 1 as soon as this file exists, WITHOUT stopping envoy
 *                                 (like a Go panic: envoy is left behind for the supervisor)
 *   FAKE_PILOT_AGENT_CONFIG_DIR   default --configPath (else $TMPDIR/fake-pilot-agent-<pid>)
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const env = process.env;
const argv = process.argv.slice(2);

function log(level, msg) {
  process.stdout.write(`${new Date().toISOString()}\t${level}\t${msg}\n`);
}

if (argv[0] !== 'proxy') {
  process.stderr.write(`Error: unknown command "${argv[0]}" for "pilot-agent"\n`);
  process.exit(1);
}

const flags = {};
for (let i = 1; i < argv.length; i++) {
  const m = /^--?([A-Za-z][\w-]*)(?:=(.*))?$/.exec(argv[i]);
  if (!m) continue;
  if (m[2] !== undefined) flags[m[1]] = m[2];
  else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) flags[m[1]] = argv[++i];
  else flags[m[1]] = 'true';
}

const adminPort = Number(flags.proxyAdminPort || 15000);
const configPath =
  flags.configPath ||
  env.FAKE_PILOT_AGENT_CONFIG_DIR ||
  path.join(os.tmpdir(), `fake-pilot-agent-${process.pid}`);
const binaryPath = flags.binaryPath || path.join(path.dirname(process.argv[1]), 'envoy');
const ns = env.POD_NAMESPACE || '';
const node = `sidecar~${env.INSTANCE_IP || ''}~${env.POD_NAME || ''}.${ns}~${ns}.svc.cluster.local`;

if (env.FAKE_PILOT_AGENT_RECORD_DIR) {
  const status = (() => {
    try {
      return fs.readFileSync('/proc/self/status', 'utf8');
    } catch {
      return '';
    }
  })();
  const pick = (k) => (new RegExp(`^${k}:[ \\t]*(.*)$`, 'm').exec(status) || [])[1];
  fs.writeFileSync(
    path.join(
      env.FAKE_PILOT_AGENT_RECORD_DIR,
      `pilot-agent-${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.json`,
    ),
    JSON.stringify(
      {
        program: 'pilot-agent',
        pid: process.pid,
        ppid: process.ppid,
        startedAt: Date.now(),
        argv,
        flags,
        env,
        uid: process.getuid(),
        gid: process.getgid(),
        groups: (pick('Groups') || '').trim(),
        uidLine: pick('Uid'),
        gidLine: pick('Gid'),
        nsPid: pick('NSpid'),
        node,
      },
      null,
      2,
    ),
  );
}

log(
  'info',
  `Version fake-pilot-agent; discovery ${flags.discoveryAddress}, auth ${flags.controlPlaneAuthPolicy}`,
);
fs.mkdirSync(configPath, { recursive: true, mode: 0o700 });
const cfg = path.join(configPath, 'envoy-rev0.json');
fs.writeFileSync(
  cfg,
  JSON.stringify({
    node: {
      id: node,
      cluster: flags.serviceCluster || 'istio-proxy',
      metadata: { istio: 'sidecar' },
    },
    admin: {
      access_log_path: '/dev/null',
      address: { socket_address: { address: '127.0.0.1', port_value: adminPort } },
    },
  }),
);

const envoyArgs = [
  '-c',
  cfg,
  '--restart-epoch',
  '0',
  '--drain-time-s',
  '2',
  '--parent-shutdown-time-s',
  '3',
];
envoyArgs.push('--service-cluster', flags.serviceCluster || 'istio-proxy', '--service-node', node);
log('info', `Envoy command: ${envoyArgs.join(' ')}`);
const envoy = spawn(binaryPath, envoyArgs, { stdio: 'inherit' });
envoy.on('error', (e) => {
  log('error', `cannot start envoy ${binaryPath}: ${e.message}`);
  process.exit(1);
});
envoy.on('exit', (code, signal) => {
  log('error', `Epoch 0 exited with code ${code} signal ${signal}`);
  process.exit(1);
});

function stop(sig) {
  log('info', `${sig} received, aborting envoy`);
  envoy.removeAllListeners('exit');
  try {
    envoy.kill('SIGKILL');
  } catch {
    /* gone */
  }
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

if (env.FAKE_PILOT_AGENT_CRASH_FILE) {
  setInterval(() => {
    if (fs.existsSync(env.FAKE_PILOT_AGENT_CRASH_FILE)) {
      log('error', 'panic: crash requested (FAKE_PILOT_AGENT_CRASH_FILE)');
      process.exit(1);
    }
  }, 20);
}
