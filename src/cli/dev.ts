import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Agent, liveDeps } from '../agent';
import { startDevCa } from '../ca/index';
import { buildCertManager } from '../certs/index';
import { buildConfig, parseDuration, RawEnv } from '../config/index';
import { systemClock } from '../lib/clock';
import { AgentError } from '../lib/errors';
import { acquireLock, AGENT_LOCK } from '../lib/lock';
import { createLogger, type Logger } from '../observe/index';
import { createNotifier } from '../systemd/index';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent dev [--state-dir DIR] [--ttl 60s] [--api HandleCSR|CreateCertificate]
                            [--key RSA|ECDSA] [--once] [--json]

Runs the agent against an embedded Citadel-compatible CA on 127.0.0.1: makes a
bootstrap certificate, lets the agent replace it with one for a key it made,
and renews it every ~half TTL so rotation shows within a minute. Changes nothing
on the host (no iptables, no DNS, no sidecar) and needs no root. State lives in
--state-dir (default ./.dev-state). Ctrl-C stops it.

  --once   exit 0 after the first certificate is issued
  --json   JSON log records instead of readable lines`;

const IDENTITY = 'spiffe://cluster.local/ns/default/sa/dev-vm';

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(
    ctx.argv,
    {
      ...HELP_OPTION,
      'state-dir': { type: 'string' },
      ttl: { type: 'string' },
      api: { type: 'string' },
      key: { type: 'string' },
      once: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const stateDir = path.resolve(values['state-dir'] ?? '.dev-state');
  const ttlMs = parseDuration(values.ttl ?? '60s');
  if (ttlMs === undefined || ttlMs < 10_000)
    throw new AgentError(
      'AGENT_E_USAGE',
      `--ttl ${values.ttl}: give a duration of at least 10s\n${USAGE}`,
    );
  const log = createLogger({ level: 'info', pretty: !values.json, journal: false });
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  // One dev per state directory: a second one would share the CA's and the certificates' files.
  const lock = await acquireLock(path.join(stateDir, 'agent'), AGENT_LOCK, {
    holder: 'istio-node-agent dev',
  });
  try {
    return await runDev(values, stateDir, ttlMs, log);
  } finally {
    await lock.release();
  }
}

async function runDev(
  values: { api?: string; key?: string; once?: boolean; ttl?: string },
  stateDir: string,
  ttlMs: number,
  log: Logger,
): Promise<number> {
  const caDir = path.join(stateDir, 'ca');
  const certsDir = path.join(stateDir, 'certs');
  await fs.mkdir(caDir, { recursive: true, mode: 0o700 });

  // The CA keeps its root across runs, so a restarted dev agent keeps its certificates.
  const root = await readRoot(caDir);
  const ca = await startDevCa({ ttlMs, ...(root ? { root } : {}) });
  if (!root) {
    await fs.writeFile(path.join(caDir, 'root-cert.pem'), ca.rootPem);
    await fs.writeFile(path.join(caDir, 'root-key.pem'), ca.rootKeyPem, { mode: 0o600 });
  }
  log.info(
    { component: 'dev', address: ca.address, ttl: values.ttl ?? '60s' },
    `embedded CA listening on ${ca.address}`,
  );

  if (!(await exists(path.join(certsDir, 'cert-chain.pem')))) {
    const boot = await ca.issueBootstrap(IDENTITY, 24 * 3600_000);
    await fs.mkdir(certsDir, { recursive: true });
    await fs.writeFile(path.join(certsDir, 'cert-chain.pem'), boot.certChainPem);
    await fs.writeFile(path.join(certsDir, 'key.pem'), boot.keyPem, { mode: 0o600 });
    await fs.writeFile(path.join(certsDir, 'root-cert.pem'), boot.rootPem);
    log.info(
      { component: 'dev', certsDir, identity: IDENTITY },
      `wrote a bootstrap certificate for ${IDENTITY} to ${certsDir}`,
    );
  }

  const raw = new RawEnv();
  const set = (k: string, v: string): void => {
    raw.set(k, v, 'dev', 0);
  };
  set('CITADEL_ADDRESS', ca.address);
  set('CITADEL_SERVER_NAME', 'istio-citadel');
  set('CITADEL_ENV', 'onprem');
  set('CA_API', values.api ?? 'HandleCSR');
  set('WORKLOAD_KEY_ALGORITHM', values.key ?? 'RSA');
  set('CERTS_DIR', certsDir);
  set('WORKLOAD_CERT_TTL', String(Math.round(ttlMs / 1000)));
  set('ISTIO_AGENT_STATE_DIR', path.join(stateDir, 'agent'));
  set('ISTIO_CAPTURE', 'false');
  set('SIDECAR_MODE', 'none');
  // One agent, not a fleet: the first CSR goes out at once.
  set('CERT_FIRST_CSR_JITTER', '0');
  const config = buildConfig(raw, { cluster: '(dev)', sidecar: '(dev)' });

  const { deps, bind } = liveDeps(log);
  // Dev mode changes nothing on the host: no chown of the key to the proxy user.
  const certs = await buildCertManager(config, deps, { keyOwner: 'none' });
  const agent = new Agent(config, [certs], {
    log,
    clock: systemClock,
    notifier: createNotifier({}, log),
    statusFile: path.join(stateDir, 'agent', 'status.json'),
  });
  bind(agent);
  deps.events.on('certs-rotated', (info) => {
    log.info(
      { component: 'dev', generation: info.generation },
      `new certificate set live in ${info.certsDir}`,
    );
  });
  const stop = (): void => {
    log.info({ component: 'dev' }, 'stopping');
    void agent.stop();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await agent.start();
    if (values.once) await agent.stop();
    await agent.wait();
  } catch (e) {
    await ca.stop();
    throw e;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  await ca.stop();
  return agent.failed ? agent.failed.exitCode : 0;
}

async function readRoot(dir: string): Promise<{ certPem: string; keyPem: string } | undefined> {
  try {
    return {
      certPem: await fs.readFile(path.join(dir, 'root-cert.pem'), 'utf8'),
      keyPem: await fs.readFile(path.join(dir, 'root-key.pem'), 'utf8'),
    };
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
