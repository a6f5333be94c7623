import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { startDevCa } from '../ca/index';
import { buildCertManager } from '../certs/index';
import { buildConfig, parseDuration, RawEnv } from '../config/index';
import { runDaemon, withAgentLock } from '../daemon/index';
import { atomicWrite } from '../lib/atomic-write';
import { AgentError } from '../lib/errors';
import { ensureDir, readFileSafe } from '../lib/safe-fs';
import { createLogger, wantsColor, type Logger } from '../observe/index';
import { createNotifier } from '../systemd/index';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent dev [--state-dir DIR] [--ttl 60s] [--api HandleCSR|CreateCertificate]
                            [--key RSA|ECDSA] [--once] [--json]

Runs the agent against an embedded Citadel-compatible CA on 127.0.0.1: makes a
bootstrap certificate, lets the agent replace it with one for a key it made,
and renews it every ~half TTL so rotation shows within a minute. Changes nothing
on the host (no iptables, no DNS, no sidecar) and needs no root. State lives in
--state-dir (default ./.dev-state); \`status --state-dir DIR/agent\` shows it.
The monitoring endpoint takes a free loopback port (ISTIO_AGENT_MONITORING_ADDR
names another); the start-up banner says which. Ctrl-C stops it.

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
  const log = createLogger({
    level: 'info',
    pretty: !values.json,
    color: wantsColor(process.stdout, ctx.env),
    journal: false,
  });
  // One dev per state directory: a second one would share the CA's and the certificates' files.
  await ensureDir(stateDir, 0o700);
  return withAgentLock(path.join(stateDir, 'agent'), 'istio-node-agent dev', () =>
    runDev(ctx, values, stateDir, ttlMs, log),
  );
}

async function runDev(
  ctx: CommandContext,
  values: { api?: string; key?: string; once?: boolean; ttl?: string },
  stateDir: string,
  ttlMs: number,
  log: Logger,
): Promise<number> {
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
      { component: 'dev', address: ca.address, ttl: values.ttl ?? '60s' },
      `embedded CA listening on ${ca.address}`,
    );

    // A set from an earlier run is the certificate store's (cert-chain.pem is then its symlink
    // into a generation directory): whether there is one is all that is asked here; the store
    // checks it when the agent starts.
    if (!(await present(path.join(certsDir, 'cert-chain.pem')))) {
      const boot = await ca.issueBootstrap(IDENTITY, 24 * 3600_000);
      await ensureDir(certsDir, 0o755);
      await atomicWrite(path.join(certsDir, 'cert-chain.pem'), boot.certChainPem, { mode: 0o644 });
      await atomicWrite(path.join(certsDir, 'key.pem'), boot.keyPem, { mode: 0o600 });
      await atomicWrite(path.join(certsDir, 'root-cert.pem'), boot.rootPem, { mode: 0o644 });
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
    // Beside a real agent on 15014: any free port, unless the environment names one.
    set('ISTIO_AGENT_MONITORING_ADDR', ctx.env.ISTIO_AGENT_MONITORING_ADDR || '127.0.0.1:0');
    // One agent, not a fleet: the first CSR goes out at once.
    set('CERT_FIRST_CSR_JITTER', '0');
    const config = buildConfig(raw, { cluster: '(dev)', sidecar: '(dev)' });

    return await runDaemon({
      config,
      log,
      env: ctx.env,
      notifier: createNotifier({}, log),
      once: values.once ?? false,
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
        if (!values.once) ctx.err(banner(stateDir, certsDir, monitoring));
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
