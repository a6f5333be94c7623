import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { startDevCa, type CaCallRecord, type DevCa } from '../ca/index';
import { verifyChain } from '../certs/index';
import { splitPemCertificates } from '../lib/pem';
import { parseDuration } from '../config/index';
import { atomicWrite } from '../lib/atomic-write';
import { formatDurationSetting } from '../lib/duration';
import { AgentError } from '../lib/errors';
import { parseHostPort } from '../lib/host-port';
import { createLogger, type Logger } from '../observe/index';
import { HELP_OPTION, parseOptions, usageError, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent dev-ca --state-dir DIR [options]

Serves the embedded Citadel-compatible CA (tests and labs): gRPC over TLS with both
istio.v1.auth.IstioCAService/HandleCSR (Istio 1.0) and
istio.v1.auth.IstioCertificateService/CreateCertificate (Citadel 1.1+, istiod).
Clients authenticate with a certificate issued by this CA (mTLS); CSRs must carry a SAN.

Options:
  --listen HOST:PORT           address to serve on (default 127.0.0.1:8060; port 0 = any)
  --state-dir DIR              keeps the CA root (root-cert.pem, root-key.pem); reused on restart
  --ttl DURATION               lifetime of issued workload certificates (default 1h)
  --max-ttl DURATION           refuse CSRs asking for more, as Citadel does (default 2160h)
  --intermediate               issue through an intermediate CA (chains of three)
  --server-name NAME           a SAN of the CA's TLS certificate; repeatable
                               (default istio-citadel, istio-ca, localhost, 127.0.0.1)
  --bootstrap-identity ID      write a bootstrap set for ID (e.g. spiffe://cluster.local/ns/default/sa/vm)
  --bootstrap-dir DIR          where to write it: cert-chain.pem, key.pem (0600), root-cert.pem
                               (default STATE_DIR/bootstrap); an existing set is kept
  --bootstrap-ttl DURATION     lifetime of the bootstrap certificate (default 2160h)
  --bootstrap-key RSA|ECDSA    key type of the bootstrap set (default RSA, 2048 bits)
  --force-bootstrap            overwrite an existing bootstrap set

Prints one line when it is listening; logs each call (never keys or tokens) to stderr.
SIGTERM or SIGINT stops it (exit 0).`;

const HOUR_MS = 3_600_000;

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(
    ctx.argv,
    {
      ...HELP_OPTION,
      listen: { type: 'string' },
      'state-dir': { type: 'string' },
      ttl: { type: 'string' },
      'max-ttl': { type: 'string' },
      intermediate: { type: 'boolean' },
      'server-name': { type: 'string', multiple: true },
      'bootstrap-identity': { type: 'string' },
      'bootstrap-dir': { type: 'string' },
      'bootstrap-ttl': { type: 'string' },
      'bootstrap-key': { type: 'string' },
      'force-bootstrap': { type: 'boolean' },
    },
    USAGE,
  );
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const usage = (msg: string): AgentError => usageError(msg, USAGE);
  const stateDir = values['state-dir'];
  if (!stateDir) throw usage('--state-dir is required');
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:8060', usage);
  const ttlMs = durationOption(values.ttl, HOUR_MS, '--ttl', usage);
  const maxTtlMs = durationOption(values['max-ttl'], 2160 * HOUR_MS, '--max-ttl', usage);
  const bootstrapTtlMs = durationOption(
    values['bootstrap-ttl'],
    2160 * HOUR_MS,
    '--bootstrap-ttl',
    usage,
  );
  const keyArg = (values['bootstrap-key'] ?? 'RSA').toUpperCase();
  if (keyArg !== 'RSA' && keyArg !== 'ECDSA')
    throw usage(`--bootstrap-key "${values['bootstrap-key']}" is not RSA or ECDSA`);
  const identity = values['bootstrap-identity'];
  if (identity !== undefined && !/^\S+$/.test(identity))
    throw usage(`--bootstrap-identity "${identity}" has blanks; give a spiffe:// URI`);
  if (values['bootstrap-dir'] && identity === undefined)
    throw usage('--bootstrap-dir needs --bootstrap-identity');

  const log = createLogger({ write: ctx.err }).child({ component: 'dev-ca' });
  const root = await loadOrCreateRoot(stateDir);
  let ca: DevCa;
  try {
    ca = await startDevCa({
      host,
      port,
      ttlMs,
      maxTtlMs,
      intermediate: values.intermediate ?? false,
      ...(values['server-name'] ? { serverNames: values['server-name'] } : {}),
      ...(root ? { root } : {}),
      maxCallRecords: 100,
      onCall: (c) => {
        logCall(log, c);
      },
    });
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `cannot serve on ${values.listen ?? '127.0.0.1:8060'}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  // Stop on a signal that arrives from here on, even while the bootstrap set is being written.
  let onSignal: (() => void) | undefined;
  const stopped = new Promise<string>((resolve) => {
    const handler = (sig: string) => () => {
      resolve(sig);
    };
    const term = handler('SIGTERM');
    const int = handler('SIGINT');
    process.once('SIGTERM', term);
    process.once('SIGINT', int);
    onSignal = () => {
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
    };
  });
  try {
    if (!root) await saveRoot(stateDir, ca.rootPem, ca.rootKeyPem);
    let bootstrapNote = '';
    if (identity !== undefined) {
      const dir = values['bootstrap-dir'] ?? path.join(stateDir, 'bootstrap');
      const written = await writeBootstrap(
        ca,
        dir,
        identity,
        bootstrapTtlMs,
        keyArg,
        values['force-bootstrap'] ?? false,
      );
      bootstrapNote = `; bootstrap ${identity} ${written ? 'written to' : 'kept in'} ${dir}`;
      if (!written) await warnIfForeign(dir, ca, log);
    }
    ctx.out(
      `istio-node-agent dev-ca: listening on ${ca.address} (HandleCSR, CreateCertificate); root ${path.join(stateDir, 'root-cert.pem')}; workload TTL ${formatDurationSetting(ttlMs)}${bootstrapNote}\n`,
    );
    const sig = await stopped;
    log.info({ signal: sig }, `received ${sig}, stopping`);
  } finally {
    onSignal?.();
    await ca.stop();
  }
  return 0;
}

function parseListen(s: string, usage: (m: string) => AgentError): { host: string; port: number } {
  const r = parseHostPort(s, { minPort: 0 });
  if (!r.ok) throw usage(`--listen "${s}" is not HOST:PORT`);
  return { host: r.host, port: r.port };
}

function durationOption(
  v: string | undefined,
  def: number,
  name: string,
  usage: (m: string) => AgentError,
): number {
  if (v === undefined) return def;
  const ms = parseDuration(v);
  if (ms === undefined || ms < 1000)
    throw usage(`${name} "${v}" is not a duration of at least 1s (e.g. 90s, 15m, 1h)`);
  return ms;
}

async function loadOrCreateRoot(
  stateDir: string,
): Promise<{ certPem: string; keyPem: string } | undefined> {
  const certFile = path.join(stateDir, 'root-cert.pem');
  const keyFile = path.join(stateDir, 'root-key.pem');
  try {
    await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `cannot create the state directory ${stateDir}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([
      fs.readFile(certFile, 'utf8'),
      fs.readFile(keyFile, 'utf8'),
    ]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError(
      'AGENT_E_IO',
      `cannot read the CA root in ${stateDir}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return { certPem, keyPem };
}

async function saveRoot(stateDir: string, certPem: string, keyPem: string): Promise<void> {
  try {
    await atomicWrite(path.join(stateDir, 'root-key.pem'), keyPem, { mode: 0o600 });
    await atomicWrite(path.join(stateDir, 'root-cert.pem'), certPem, { mode: 0o644 });
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `cannot save the CA root in ${stateDir}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** Writes the set unless one is there already (the agent may have replaced it with its own). */
async function writeBootstrap(
  ca: DevCa,
  dir: string,
  identity: string,
  ttlMs: number,
  alg: 'RSA' | 'ECDSA',
  force: boolean,
): Promise<boolean> {
  const chainFile = path.join(dir, 'cert-chain.pem');
  if (!force) {
    try {
      await fs.stat(chainFile);
      return false;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AgentError('AGENT_E_IO', `cannot look at ${chainFile}: ${(e as Error).message}`, {
          cause: e,
        });
      }
    }
  }
  const set = await ca.issueBootstrap(identity, ttlMs, alg);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    // Key first, chain last: a reader that finds cert-chain.pem finds its key beside it.
    await atomicWrite(path.join(dir, 'key.pem'), set.keyPem, { mode: 0o600 });
    await atomicWrite(path.join(dir, 'root-cert.pem'), set.rootPem, { mode: 0o644 });
    await atomicWrite(chainFile, set.certChainPem, { mode: 0o644 });
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `cannot write the bootstrap set to ${dir}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return true;
}

async function warnIfForeign(dir: string, ca: DevCa, log: Logger): Promise<void> {
  try {
    const pems =
      splitPemCertificates(await fs.readFile(path.join(dir, 'cert-chain.pem'), 'utf8')) ?? [];
    const chain = pems.map((p) => new X509Certificate(p));
    if (chain.length === 0 || !verifyChain(chain, [new X509Certificate(ca.rootPem)]).ok) {
      log.warn(
        { dir },
        `the certificate in ${dir}/cert-chain.pem does not chain to this CA's root; use --force-bootstrap to replace it`,
      );
    }
  } catch (e) {
    log.warn(
      { dir, err: (e as Error).message },
      `cannot read the existing bootstrap set in ${dir}`,
    );
  }
}

function logCall(log: Logger, c: CaCallRecord): void {
  // Only what is safe to log: no bearer token, no credential bytes.
  const fields = {
    api: c.api,
    outcome: c.outcome,
    identity: c.requestedIdentity,
    authenticated: c.authenticatedIdentity,
    peerCertSerial: c.peerCertSerial,
    credentialType: c.credentialType,
    requestedTtlMs: c.requestedTtlMs,
    issuedSerial: c.issuedSerial,
  };
  if (c.outcome === 'issued')
    log.info(fields, `${c.api}: issued ${c.requestedIdentity?.join(',') ?? ''}`);
  else log.warn(fields, `${c.api}: ${c.outcome}`);
}
