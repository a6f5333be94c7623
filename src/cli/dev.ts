import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Agent, liveDeps } from '../agent';
import { startDevCa } from '../ca/index';
import { buildCertManager } from '../certs/index';
import { systemClock } from '../lib/clock';
import { acquireLock, AGENT_LOCK } from '../lib/lock';
import { createLogger, type Logger } from '../observe/index';
import { createNotifier } from '../systemd/index';
import type { CommandContext } from './context';
import {
  DEV_IDENTITY,
  DEV_USAGE,
  devConfig,
  parseDevOptions,
  type DevOptions,
} from './dev-options';

export async function run(ctx: CommandContext): Promise<number> {
  // Every option is checked before anything starts: a bad one exits 78, nothing listening.
  const opts = parseDevOptions(ctx.argv);
  if (opts.help) {
    ctx.out(DEV_USAGE + '\n');
    return 0;
  }
  const stateDir = opts.stateDir;
  const log = createLogger({ level: 'info', pretty: !opts.json, journal: false });
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  // One dev per state directory: a second one would share the CA's and the certificates' files.
  const lock = await acquireLock(path.join(stateDir, 'agent'), AGENT_LOCK, {
    holder: 'istio-node-agent dev',
  });
  try {
    return await runDev(opts, log);
  } finally {
    await lock.release();
  }
}

async function runDev(opts: DevOptions, log: Logger): Promise<number> {
  const { stateDir, ttlMs } = opts;
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
    { component: 'dev', address: ca.address, ttl: opts.ttl },
    `embedded CA listening on ${ca.address}`,
  );

  if (!(await exists(path.join(certsDir, 'cert-chain.pem')))) {
    const boot = await ca.issueBootstrap(DEV_IDENTITY, 24 * 3600_000);
    await fs.mkdir(certsDir, { recursive: true });
    await fs.writeFile(path.join(certsDir, 'cert-chain.pem'), boot.certChainPem);
    await fs.writeFile(path.join(certsDir, 'key.pem'), boot.keyPem, { mode: 0o600 });
    await fs.writeFile(path.join(certsDir, 'root-cert.pem'), boot.rootPem);
    log.info(
      { component: 'dev', certsDir, identity: DEV_IDENTITY },
      `wrote a bootstrap certificate for ${DEV_IDENTITY} to ${certsDir}`,
    );
  }

  const config = devConfig(opts, ca.address);

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
    if (opts.once) await agent.stop();
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
