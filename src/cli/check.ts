import { X509Certificate, createPrivateKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { loadConfig } from '../config/index';
import type { AgentConfig } from '../config/types';
import { CertStore, verifyChain } from '../certs/index';
import { extractCertificates } from '../lib/pem';
import { identityOfCertificate } from '../identity/index';
import { formatDuration, isoTime } from '../lib/duration';
import { systemClock } from '../lib/clock';
import { toAgentError } from '../lib/errors';
import { splitHostPort } from '../lib/host-port';
import { statusFilePath } from '../observe/index';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent check [--state-dir DIR] [--json]

A self-check of this host, from the same configuration as \`run\`: the configuration itself,
the certificate set (present, key matches, chain verifies to root-cert.pem, time left), the CA
(TLS handshake with the name and root the agent uses), the GCE metadata server (gcp/auto),
the capture rules against the plan (root), the DNS drop-in and dnsmasq, the sidecar binaries,
and the daemon's last status. Changes nothing.
--state-dir DIR stands for ISTIO_AGENT_STATE_DIR (the daemon's state directory).
Exit 0 when every check passes, 1 when one fails, 78 when the configuration is invalid.`;

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  /** A skipped check (not configured, or needs root) passes. */
  readonly skipped?: boolean;
  readonly detail: string;
}

type Check = (cfg: AgentConfig, ctx: CommandContext) => Promise<Omit<CheckResult, 'name'>>;

const pass = (detail: string): Omit<CheckResult, 'name'> => ({ ok: true, detail });
const fail = (detail: string): Omit<CheckResult, 'name'> => ({ ok: false, detail });
const skip = (detail: string): Omit<CheckResult, 'name'> => ({ ok: true, skipped: true, detail });

/** What a certificate set looks like, as a pure summary of its PEM texts. */
export function inspectSet(
  set: { keyPem?: string; chainPem?: string; rootPem?: string },
  now: number,
): { ok: boolean; detail: string } {
  if (!set.chainPem || !set.keyPem || !set.rootPem) {
    const missing = [
      !set.chainPem && 'cert-chain.pem',
      !set.keyPem && 'key.pem',
      !set.rootPem && 'root-cert.pem',
    ].filter(Boolean);
    return { ok: false, detail: `missing ${missing.join(', ')}` };
  }
  try {
    const blocks = extractCertificates(set.chainPem);
    const certs = blocks.map((b) => new X509Certificate(b));
    const leaf = certs[0];
    if (!leaf) return { ok: false, detail: 'cert-chain.pem holds no certificate' };
    if (!leaf.checkPrivateKey(createPrivateKey(set.keyPem)))
      return { ok: false, detail: 'key.pem does not match cert-chain.pem' };
    const roots = extractCertificates(set.rootPem).map((b) => new X509Certificate(b));
    const chain = verifyChain(certs, roots);
    if (!chain.ok) {
      return {
        ok: false,
        detail:
          'brokenAt' in chain
            ? `chain certificate ${chain.brokenAt} is not signed by ${chain.brokenAt + 1}`
            : 'cert-chain.pem does not verify to root-cert.pem',
      };
    }
    const notAfter = Date.parse(leaf.validTo);
    const id = identityOfCertificate(set.chainPem, 'cert-chain.pem');
    if (notAfter <= now) return { ok: false, detail: `${id}: expired at ${isoTime(notAfter)}` };
    return {
      ok: true,
      detail: `${id}, valid until ${isoTime(notAfter)} (${formatDuration(notAfter - now)} left)`,
    };
  } catch (e) {
    return { ok: false, detail: toAgentError(e).message };
  }
}

const checks: Record<string, Check> = {
  async certificates(cfg) {
    const set = await new CertStore(cfg.ca.certsDir).read();
    if (cfg.ca.env === 'gcp' && !set.chainPem) {
      return set.rootPem
        ? skip('no certificate yet (gcp: issued at first start)')
        : fail(`${path.join(cfg.ca.certsDir, 'root-cert.pem')} missing`);
    }
    const r = inspectSet(set, systemClock.now());
    const who = set.meta.issuer === 'agent' ? 'issued to this agent' : 'bootstrap set';
    return r.ok ? pass(`${who}: ${r.detail}`) : fail(`${cfg.ca.certsDir}: ${r.detail}`);
  },

  async ca(cfg) {
    const set = await new CertStore(cfg.ca.certsDir).read();
    if (!set.rootPem) return fail(`no root-cert.pem in ${cfg.ca.certsDir} to check the CA against`);
    const { host, port } = splitHostPort(cfg.ca.address);
    return new Promise((resolve) => {
      const socket = tls.connect({
        host,
        port,
        servername: cfg.ca.serverName,
        ca: set.rootPem,
        ALPNProtocols: ['h2'],
        ...(cfg.ca.env !== 'gcp' && set.keyPem && set.chainPem
          ? { key: set.keyPem, cert: set.chainPem }
          : {}),
        timeout: 3000,
      });
      const done = (r: Omit<CheckResult, 'name'>): void => {
        socket.destroy();
        resolve(r);
      };
      socket.once('secureConnect', () => {
        done(pass(`${cfg.ca.address}: TLS handshake OK as ${cfg.ca.serverName} (${cfg.ca.api})`));
      });
      socket.once('timeout', () => {
        done(fail(`${cfg.ca.address}: no answer within 3 s`));
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        done(fail(`${cfg.ca.address}: ${e.code ?? ''} ${e.message}`.trim()));
      });
    });
  },

  async metadata(cfg) {
    if (cfg.ca.env === 'onprem') return skip('CITADEL_ENV=onprem');
    const { detectGce, GCE_DETECT_TIMEOUT_MS } = await import('../identity/index');
    const up = await detectGce({
      host: cfg.ca.gceMetadataHost,
      timeoutMs: GCE_DETECT_TIMEOUT_MS,
    });
    if (up) return pass(`${cfg.ca.gceMetadataHost} answers as the GCE metadata server`);
    return cfg.ca.env === 'gcp'
      ? fail(`${cfg.ca.gceMetadataHost} does not answer`)
      : skip('not on GCE (auto picks onprem)');
  },

  async capture(cfg, ctx) {
    if (!cfg.capture.enabled) return skip('ISTIO_CAPTURE=false');
    if (process.getuid?.() !== 0) return skip('needs root to read the live rules');
    const { run } = await import('./iptables');
    const out: string[] = [];
    const code = await run({
      ...ctx,
      argv: ['diff'],
      out: (s) => out.push(s),
      err: (s) => out.push(s),
    });
    const lines = out
      .join('')
      .trim()
      .split('\n')
      .filter((l) => l !== '');
    return code === 0
      ? pass('live rules match the plan')
      : fail(`live rules differ from the plan: ${lines.slice(0, 4).join(' | ')}`);
  },

  async dns(cfg, ctx) {
    if (!cfg.dns.enabled) return skip('no DNS variables set');
    const file = path.join(cfg.dns.dropInDir, 'kubedns');
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch {
      return fail(`${file} missing (run: istio-node-agent dns apply)`);
    }
    const { isManaged } = await import('../dns/index');
    if (!isManaged(text)) return fail(`${file} is not managed by the agent`);
    const { run } = await import('./dns');
    const out: string[] = [];
    const code = await run({
      ...ctx,
      argv: ['plan', '--json'],
      out: (s) => out.push(s),
      err: () => undefined,
    });
    if (code !== 0) return fail('dns plan failed');
    const plan = JSON.parse(out.join('')) as { dropIn?: { action?: string } };
    const changed = plan.dropIn?.action !== 'unchanged';
    return changed
      ? fail(`${file} differs from the configuration (run: istio-node-agent dns apply)`)
      : pass(`${file} is current`);
  },

  async sidecar(cfg) {
    if (cfg.sidecar.mode === 'none') return skip('SIDECAR_MODE=none');
    const names = cfg.sidecar.mode === 'auto' ? ['pilot-agent', 'envoy'] : [cfg.sidecar.mode];
    const found: string[] = [];
    for (const n of names) {
      try {
        await fs.access(path.join(cfg.sidecar.binBase, n), fs.constants.X_OK);
        found.push(n);
      } catch {
        /* not there */
      }
    }
    if (found.length === 0)
      return fail(`${names.join(' or ')} not found in ${cfg.sidecar.binBase}`);
    return pass(`${found[0]!} in ${cfg.sidecar.binBase}`);
  },

  async daemon(cfg) {
    try {
      const st = JSON.parse(await fs.readFile(statusFilePath(cfg.core.stateDir), 'utf8')) as {
        state: string;
        summary: string;
        pid: number;
      };
      let alive = false;
      try {
        process.kill(st.pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
      if (!alive)
        return st.state === 'stopped'
          ? skip('not running (stopped cleanly)')
          : fail(`not running (last state ${st.state})`);
      return st.state === 'ready'
        ? pass(`ready: ${st.summary}`)
        : fail(`${st.state}: ${st.summary}`);
    } catch {
      return skip('no status file: the daemon has not run here');
    }
  },
};

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(
    ctx.argv,
    { ...HELP_OPTION, json: { type: 'boolean' }, 'state-dir': { type: 'string' } },
    USAGE,
  );
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const env = values['state-dir']
    ? { ...ctx.env, ISTIO_AGENT_STATE_DIR: values['state-dir'] }
    : ctx.env;
  // An invalid configuration is the first finding, and ends the check (exit 78).
  const { config, warnings } = await loadConfig(env);
  const results: CheckResult[] = [
    {
      name: 'config',
      ok: true,
      detail: warnings.length
        ? warnings.join('; ')
        : `${config.files.cluster}, ${config.files.sidecar}`,
    },
  ];
  for (const [name, check] of Object.entries(checks)) {
    try {
      results.push({ name, ...(await check(config, ctx)) });
    } catch (e) {
      results.push({ name, ok: false, detail: toAgentError(e).toLine() });
    }
  }
  if (values.json) {
    ctx.out(JSON.stringify(results, null, 2) + '\n');
  } else {
    for (const r of results)
      ctx.out(`${r.skipped ? 'skip' : r.ok ? 'ok  ' : 'FAIL'} ${r.name.padEnd(12)} ${r.detail}\n`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}
