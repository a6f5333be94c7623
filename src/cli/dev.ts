import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../ca/index';
import { buildCertManager } from '../certs/index';
import { runDaemon, withAgentLock } from '../daemon/index';
import { atomicWrite } from '../lib/atomic-write';
import { ensureDir, readFileSafe } from '../lib/safe-fs';
import { createLogger, wantsColor, type Logger } from '../observe/index';
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
  const log = createLogger({
    level: 'info',
    pretty: !opts.json,
    color: wantsColor(process.stdout, ctx.env),
    journal: false,
  });
  // One dev per state directory: a second one would share the CA's and the certificates' files.
  await ensureDir(opts.stateDir, 0o700);
  return withAgentLock(path.join(opts.stateDir, 'agent'), 'istio-node-agent dev', () =>
    runDev(ctx, opts, log),
  );
}

async function runDev(ctx: CommandContext, opts: DevOptions, log: Logger): Promise<number> {
  const { stateDir, ttlMs } = opts;
  const caDir = path.join(stateDir, 'ca');
  const certsDir = path.join(stateDir, 'certs');
  await ensureDir(caDir, 0o700);

  // The CA keeps its root across runs, so a restarted dev agent keeps its certificates.
  const root = await readRoot(caDir);
  const ca = await startDevCa({ ttlMs, ...(root ? { root } : {}) });
  try {
    if (!root) {
      await atomicWrite(path.join(caDir, 'root-cert.pem'), ca.rootPem, { mode: 0o644 });
      await atomicWrite(path.join(caDir, 'root-key.pem'), ca.rootKeyPem, { mode: 0o600 });
    }
    log.info(
      { component: 'dev', address: ca.address, ttl: opts.ttl },
      `embedded CA listening on ${ca.address}`,
    );

    // A set from an earlier run is the certificate store's (cert-chain.pem is then its symlink
    // into a generation directory): whether there is one is all that is asked here; the store
    // checks it when the agent starts.
    if (!(await present(path.join(certsDir, 'cert-chain.pem')))) {
      const boot = await ca.issueBootstrap(DEV_IDENTITY, 24 * 3600_000);
      await ensureDir(certsDir, 0o755);
      await atomicWrite(path.join(certsDir, 'cert-chain.pem'), boot.certChainPem, { mode: 0o644 });
      await atomicWrite(path.join(certsDir, 'key.pem'), boot.keyPem, { mode: 0o600 });
      await atomicWrite(path.join(certsDir, 'root-cert.pem'), boot.rootPem, { mode: 0o644 });
      log.info(
        { component: 'dev', certsDir, identity: DEV_IDENTITY },
        `wrote a bootstrap certificate for ${DEV_IDENTITY} to ${certsDir}`,
      );
    }

    // Beside a real agent on 15014: any free port, unless the environment names one.
    const config = devConfig(
      { ...opts, monitoringAddr: ctx.env.ISTIO_AGENT_MONITORING_ADDR || '127.0.0.1:0' },
      ca.address,
    );

    return await runDaemon({
      config,
      log,
      env: ctx.env,
      notifier: createNotifier({}, log),
      once: opts.once,
      build: async (deps) => {
        deps.events.on('certs-rotated', (info) => {
          log.info(
            { component: 'dev', generation: info.generation },
            `new certificate set live in ${info.certsDir}`,
          );
        });
        // Dev mode changes nothing on the host: no chown of the key to the proxy user.
        return [await buildCertManager(config, deps, { keyOwner: 'none' })];
      },
      started: ({ monitoring }) => {
        if (!opts.once) ctx.err(banner(stateDir, certsDir, monitoring));
      },
    });
  } finally {
    await ca.stop();
  }
}

/** What to do next, once the first certificate is there. */
export function banner(stateDir: string, certsDir: string, monitoring: string | undefined): string {
  const chain = path.join(certsDir, 'cert-chain.pem');
  return (
    [
      '',
      `  Certificates: ${certsDir} (cert-chain.pem, key.pem, root-cert.pem), renewed every ~half TTL`,
      `  Look at one:  openssl x509 -in ${chain} -noout -subject -serial -dates -ext subjectAltName`,
      `  Status:       ${selfCommand()} status --state-dir ${path.join(stateDir, 'agent')}`,
      ...(monitoring
        ? [`  Monitoring:   curl -s http://${monitoring}/metrics | grep istio_node_agent_`]
        : []),
      '  Ctrl-C stops it.',
      '',
    ].join('\n') + '\n'
  );
}

/** How this program was started: `istio-node-agent`, or `node dist/istio-node-agent.cjs`. */
function selfCommand(): string {
  const script = process.argv[1];
  if (!script || !/\.(c?js|ts)$/.test(script)) return 'istio-node-agent';
  return `node ${path.relative(process.cwd(), script) || script}`;
}

async function present(file: string): Promise<boolean> {
  return fs.lstat(file).then(
    () => true,
    (e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    },
  );
}

async function readRoot(dir: string): Promise<{ certPem: string; keyPem: string } | undefined> {
  const cert = await readFileSafe(path.join(dir, 'root-cert.pem')).catch(() => undefined);
  const key = await readFileSafe(path.join(dir, 'root-key.pem')).catch(() => undefined);
  if (!cert || !key) return undefined;
  return { certPem: cert.data.toString('utf8'), keyPem: key.data.toString('utf8') };
}
