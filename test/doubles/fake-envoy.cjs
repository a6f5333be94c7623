#!/usr/bin/env node
'use strict';
/*
 * TEST DOUBLE for envoy. It is not envoy: it honours only the parts of envoy's command-line and
 * admin contract that istio-node-agent's sidecar supervisor relies on, so the supervisor can be
 * tested with real processes where envoy is not installed. Self-contained (Node built-ins only)
 * so it runs as any user, e.g. `nobody`, from any directory.
 *
 * Command line (envoy's): -c/--config-path FILE, --restart-epoch N, --drain-time-s S,
 *   --parent-shutdown-time-s S, --service-cluster, --service-node, -l/--log-level,
 *   --concurrency, --max-obj-name-len (refused from version 1.15, as envoy does), --base-id,
 *   --allow-unknown-fields, --v2-config-only, --version. Unknown flags: exit 1.
 * Admin (from the bootstrap's admin.address.socket_address.port_value, on 127.0.0.1):
 *   GET /ready ("LIVE" 200, else the state 503), GET /server_info (JSON with state and
 *   command_line_options.restart_epoch), POST /healthcheck/fail, GET|POST /healthcheck/ok,
 *   POST /drain_listeners, POST /quitquitquit.
 * Hot restart: like envoy's shared memory + domain socket, epoch N listens on a unix socket
 *   `epoch-N.sock` in a state directory keyed by the admin port. Epoch N>0 connects to epoch N-1's
 *   socket (no parent = exit 1, as envoy), asks it to close its admin listener (envoy passes the
 *   listen sockets across; here the parent closes and the child binds), then after
 *   --parent-shutdown-time-s tells the parent to terminate; the parent exits 0.
 * Test controls (environment):
 *   FAKE_ENVOY_STATE_DIR    hot-restart state directory (default: $TMPDIR/fake-envoy-<uid>-<port>)
 *   FAKE_ENVOY_RECORD_DIR   write <dir>/envoy-<pid>.json: argv, ids, epoch, ppid, env subset
 *   FAKE_ENVOY_CRASH_FILE   exit (code FAKE_ENVOY_EXIT_CODE, default 1) as soon as this file exists
 *   FAKE_ENVOY_CRASH_AFTER_MS  exit that long after start
 *   FAKE_ENVOY_INIT_MS      time from start to LIVE (default 100)
 *   FAKE_ENVOY_LOG_LINES    print that many log lines on stderr at start
 *   FAKE_ENVOY_VERSION      version printed by --version (default 1.8.0)
 */
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const env = process.env;
const VERSION = env.FAKE_ENVOY_VERSION || '1.8.0';
const started = Date.now();
let state = 'PRE_INITIALIZING';
let healthFailed = false;

function log(level, msg) {
  const ts = new Date().toISOString().replace('T', ' ').replace('Z', '');
  process.stderr.write(`[${ts}][${process.pid}][${level}][main] ${msg}\n`);
}

function die(msg, code) {
  log('critical', msg);
  process.exit(code === undefined ? 1 : code);
}

const VALUE_FLAGS = {
  '-c': 'config',
  '--config-path': 'config',
  '--restart-epoch': 'epoch',
  '--drain-time-s': 'drain',
  '--parent-shutdown-time-s': 'parentShutdown',
  '--service-cluster': 'cluster',
  '--service-node': 'node',
  '-l': 'logLevel',
  '--log-level': 'logLevel',
  '--concurrency': 'concurrency',
  '--max-obj-name-len': 'maxObjNameLen',
  '--base-id': 'baseId',
};
const BOOL_FLAGS = { '--allow-unknown-fields': 'allowUnknown', '--v2-config-only': 'v2Only' };

function parseArgs(argv) {
  const o = { epoch: '0', drain: '600', parentShutdown: '900' };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === '--version') {
      process.stdout.write(
        `\nenvoy  version: 0000000000000000000000000000000000000000/${VERSION}/Clean/RELEASE/BoringSSL\n\n`,
      );
      process.exit(0);
    }
    if (BOOL_FLAGS[a]) {
      o[BOOL_FLAGS[a]] = true;
      continue;
    }
    const key = VALUE_FLAGS[a];
    if (!key) die(`PARSE ERROR: Argument: ${a}\n             Couldn't find match for argument`);
    if (v === undefined) v = argv[++i];
    if (v === undefined)
      die(`PARSE ERROR: Argument: ${a}\n             Missing a value for this argument!`);
    o[key] = v;
  }
  for (const k of ['epoch', 'drain', 'parentShutdown']) {
    if (!/^\d+$/.test(o[k])) die(`PARSE ERROR: ${k} "${o[k]}" is not a number`);
    o[k] = Number(o[k]);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const [vMajor, vMinor] = VERSION.split('.').map(Number);
if (opts.maxObjNameLen !== undefined && (vMajor > 1 || vMinor >= 15)) {
  die('PARSE ERROR: --max-obj-name-len is no longer supported');
}
if (!opts.config)
  die(
    'At least one of --config-path or --config-yaml or Options::configProto() should be non-empty',
  );

let bootstrap;
try {
  bootstrap = JSON.parse(fs.readFileSync(opts.config, 'utf8'));
} catch (e) {
  die(`error initializing configuration '${opts.config}': ${e.message}`);
}
const adminPort = Number(
  bootstrap && bootstrap.admin && bootstrap.admin.address && bootstrap.admin.address.socket_address
    ? bootstrap.admin.address.socket_address.port_value
    : NaN,
);
if (!Number.isInteger(adminPort) || adminPort < 1)
  die('bootstrap has no admin.address.socket_address.port_value');

const uid = process.getuid();
const stateDir =
  env.FAKE_ENVOY_STATE_DIR || path.join(os.tmpdir(), `fake-envoy-${uid}-${adminPort}`);
fs.mkdirSync(stateDir, { recursive: true });
const sockPath = (epoch) => path.join(stateDir, `epoch-${epoch}.sock`);

function statusLines() {
  try {
    const text = fs.readFileSync('/proc/self/status', 'utf8');
    const pick = (k) => (new RegExp(`^${k}:[ \\t]*(.*)$`, 'm').exec(text) || [])[1];
    return {
      uidLine: pick('Uid'),
      gidLine: pick('Gid'),
      groups: (pick('Groups') || '').trim(),
      capEff: pick('CapEff'),
      capAmb: pick('CapAmb'),
      nsPid: pick('NSpid'),
    };
  } catch {
    return {};
  }
}

if (env.FAKE_ENVOY_RECORD_DIR) {
  const rec = {
    program: 'envoy',
    pid: process.pid,
    ppid: process.ppid,
    startedAt: started,
    argv: process.argv.slice(2),
    epoch: opts.epoch,
    uid,
    gid: process.getgid(),
    ...statusLines(),
    adminPort,
    node: bootstrap.node,
    env: {
      HOME: env.HOME,
      USER: env.USER,
      LOGNAME: env.LOGNAME,
      PATH: env.PATH,
      NOTIFY_SOCKET: env.NOTIFY_SOCKET,
    },
  };
  fs.writeFileSync(
    path.join(env.FAKE_ENVOY_RECORD_DIR, `envoy-${process.pid}.json`),
    JSON.stringify(rec, null, 2),
  );
}

for (let i = 0; i < Number(env.FAKE_ENVOY_LOG_LINES || 0); i++) log('info', `log line ${i}`);
log(
  'info',
  `initializing epoch ${opts.epoch} (hot restart version=11.104), admin port ${adminPort}`,
);

// ---- admin ----
const admin = http.createServer((req, res) => {
  const url = (req.url || '').split('?')[0];
  const reply = (status, body, type) => {
    res.writeHead(status, {
      'content-type': type || 'text/plain; charset=UTF-8',
      connection: 'close',
    });
    res.end(body);
  };
  const shownState = healthFailed && state === 'LIVE' ? 'DRAINING' : state;
  if (url === '/ready' && req.method === 'GET')
    return reply(shownState === 'LIVE' ? 200 : 503, `${shownState}\n`);
  if (url === '/server_info' && req.method === 'GET') {
    return reply(
      200,
      JSON.stringify({
        version: `0000/${VERSION}/Clean/RELEASE/BoringSSL`,
        state: shownState,
        uptime_current_epoch: `${Math.floor((Date.now() - started) / 1000)}s`,
        command_line_options: {
          restart_epoch: opts.epoch,
          drain_time: `${opts.drain}s`,
          parent_shutdown_time: `${opts.parentShutdown}s`,
          service_cluster: opts.cluster || '',
          service_node: opts.node || '',
          config_path: opts.config,
        },
      }),
      'application/json',
    );
  }
  if (url === '/healthcheck/fail' && req.method === 'POST') {
    healthFailed = true;
    log('info', 'health check failed by admin request');
    return reply(200, 'OK\n');
  }
  if (url === '/healthcheck/ok') {
    healthFailed = false;
    return reply(200, 'OK\n');
  }
  if (url === '/drain_listeners' && req.method === 'POST') {
    log('info', 'draining listeners');
    return reply(200, 'OK\n');
  }
  if (url === '/quitquitquit' && req.method === 'POST') {
    reply(200, 'OK\n');
    return setTimeout(() => shutdown('quitquitquit'), 10);
  }
  return reply(404, 'invalid path\n');
});

function closeAdmin(cb) {
  admin.close(() => cb && cb());
  admin.closeAllConnections();
}

function bindAdmin(triesLeft) {
  admin.once('error', (e) => {
    if (e.code === 'EADDRINUSE' && triesLeft > 0)
      return setTimeout(() => bindAdmin(triesLeft - 1), 20);
    die(`cannot bind admin 127.0.0.1:${adminPort}: ${e.code}`);
  });
  admin.listen(adminPort, '127.0.0.1', () => {
    admin.removeAllListeners('error');
    log('info', `admin address: 127.0.0.1:${adminPort}`);
    setTimeout(
      () => {
        if (state === 'PRE_INITIALIZING') state = 'LIVE';
        log('info', 'all clusters initialized. initializing init manager. starting workers');
      },
      Number(env.FAKE_ENVOY_INIT_MS || 100),
    );
  });
}

// ---- hot restart ----
let rpc; // our own socket, for the next epoch
function listenRpc() {
  try {
    fs.unlinkSync(sockPath(opts.epoch));
  } catch {
    /* none */
  }
  rpc = net.createServer((conn) => {
    let buf = '';
    conn.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (msg === 'shutdown-admin') {
          log(
            'info',
            `epoch ${opts.epoch + 1} is starting: closing admin, draining for ${opts.drain}s`,
          );
          closeAdmin(() => conn.write('ok\n'));
        } else if (msg === 'terminate') {
          log('info', 'terminated by the new epoch (parent shutdown)');
          conn.end();
          shutdown('hot restart');
        }
      }
    });
    conn.on('error', () => undefined);
  });
  rpc.listen(sockPath(opts.epoch));
}

function shutdown(why) {
  log('info', `shutting down: ${why}`);
  state = 'DRAINING';
  try {
    fs.unlinkSync(sockPath(opts.epoch));
  } catch {
    /* gone */
  }
  closeAdmin();
  process.exit(0);
}

function startAsChild() {
  const conn = net.connect(sockPath(opts.epoch - 1));
  conn.on('error', (e) =>
    die(`unable to connect to parent epoch ${opts.epoch - 1} for the hot restart: ${e.code}`),
  );
  conn.on('connect', () => conn.write('shutdown-admin\n'));
  let buf = '';
  conn.on('data', (d) => {
    buf += d.toString();
    if (!buf.includes('ok\n')) return;
    buf = '';
    listenRpc();
    bindAdmin(100);
    setTimeout(() => conn.write('terminate\n'), opts.parentShutdown * 1000);
  });
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (opts.epoch === 0) {
  listenRpc();
  bindAdmin(0);
} else {
  startAsChild();
}

// ---- crash controls ----
const exitCode = Number(env.FAKE_ENVOY_EXIT_CODE || 1);
if (env.FAKE_ENVOY_CRASH_FILE) {
  setInterval(() => {
    if (fs.existsSync(env.FAKE_ENVOY_CRASH_FILE))
      die('crash requested (FAKE_ENVOY_CRASH_FILE)', exitCode);
  }, 20);
}
if (env.FAKE_ENVOY_CRASH_AFTER_MS) {
  setTimeout(
    () => die('crash requested (FAKE_ENVOY_CRASH_AFTER_MS)', exitCode),
    Number(env.FAKE_ENVOY_CRASH_AFTER_MS),
  );
}
