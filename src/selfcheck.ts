/**
 * The self-check behind `istio-node-agent check`: the same validation as `run`, then a few
 * read-only probes, as data. One code path with `run`: the configuration is loaded by
 * loadConfig, the components are built by buildComponents and each one's `preflight` runs, as
 * the agent does before it starts anything (agent.ts); nothing is started and nothing on the
 * host changes. Then: the certificate set (inspectSet: key, chain, time left), the CA (a TLS
 * handshake as a CSR makes it), the GCE metadata server, the live capture rules against the
 * plan (diffLive), the DNS drop-in against the plan (planDns). Every failure carries the code
 * `run` (or the daemon) would report it with. Without root, what needs root is skipped, saying
 * so.
 */
import { EventEmitter } from 'node:events';
import { buildComponents } from './components';
import type { AgentEventMap, Component, ComponentDeps, PreflightReport } from './component';
import { loadConfig, type AgentConfig, type LoadResult } from './config/index';
import { CertStore, inspectSet } from './certs/index';
import { probeCa } from './ca/index';
import { dnsSettings, planDns, probeHost } from './dns/index';
import { detectGce, GCE_DETECT_TIMEOUT_MS } from './identity/index';
import { diffLive, driftLine, prepare, readRecord } from './netfilter/index';
import { systemClock } from './lib/clock';
import { formatHumanDuration, isoTime } from './lib/duration';
import { AgentError, toAgentError, type ErrorCode } from './lib/errors';
import { exec as realExec, type Exec } from './lib/exec';
import { createLogger } from './observe/index';

export type CheckStatus = 'ok' | 'fail' | 'skip';

/** One finding. */
export interface CheckItem {
  /** config, certs, ca, metadata, capture, dns, sidecar. */
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** The code of a failure (every failure has one), or of what kept a check from running. */
  readonly code?: ErrorCode;
  /** Warnings on the way: what `run` would log about it. */
  readonly notes?: readonly string[];
}

export interface SelfCheckOptions {
  /** The environment `run` would have (it names the files, and overrides them). */
  readonly env: NodeJS.ProcessEnv;
  /** Default: the effective uid is 0. */
  readonly isRoot?: boolean;
  readonly now?: () => number;
  readonly exec?: Exec;
}

interface Preflight {
  readonly report?: PreflightReport;
  readonly error?: AgentError;
  readonly notes: string[];
}

/** Runs every check; the configuration's problems alone when it is invalid (nothing else can run). */
export async function selfCheck(opts: SelfCheckOptions): Promise<CheckItem[]> {
  const isRoot = opts.isRoot ?? (process.geteuid?.() ?? 0) === 0;
  const now = opts.now ?? (() => systemClock.now());
  const exec = opts.exec ?? realExec;
  let load: LoadResult;
  try {
    load = await loadConfig(opts.env);
  } catch (e) {
    return toAgentError(e).problems.map((p) => failed('config', p));
  }
  const items: CheckItem[] = [configItem(load)];
  const { config } = load;
  const { deps, notesOf } = checkDeps(exec);
  const components = await buildComponents(config, deps);
  const pre = new Map<string, Preflight>();
  const signal = new AbortController().signal;
  for (const c of components) pre.set(c.name, await preflight(c, signal, notesOf));

  const certs = await certsItems(config, pre.get('certs'), isRoot, now);
  items.push(...certs);
  items.push(await metadataItem(config));
  items.push(await captureItem(config, pre.get('capture'), isRoot, exec));
  items.push(await dnsItem(config, pre.get('dns'), isRoot));
  items.push(sidecarItem(config, pre.get('sidecar'), isRoot));
  return items;
}

/** The worst exit code among the failures: 0 none, 78 when one is a configuration error, else 1. */
export function checkExitCode(items: readonly CheckItem[]): number {
  const failures = items.filter((i) => i.status === 'fail');
  if (failures.length === 0) return 0;
  const exits = failures.map((f) =>
    f.code === undefined ? 1 : new AgentError(f.code, '').exitCode,
  );
  return exits.includes(78) ? 78 : 1;
}

// ---- the validation `run` does -------------------------------------------------------------

function configItem(load: LoadResult): CheckItem {
  const files = load.sources.map((s) =>
    s.present
      ? `${s.path} (${s.variables} ${s.variables === 1 ? 'variable' : 'variables'})`
      : `${s.path} absent (defaults)`,
  );
  return {
    name: 'config',
    status: 'ok',
    detail: files.join(', '),
    ...(load.warnings.length > 0 ? { notes: load.warnings } : {}),
  };
}

/** Component dependencies for preflight only: warnings recorded per component, nothing else. */
function checkDeps(exec: Exec): { deps: ComponentDeps; notesOf: (name: string) => string[] } {
  const records: { component?: string; msg: string }[] = [];
  const log = createLogger({
    level: 'warn',
    journal: false,
    write: (s) => {
      records.push(JSON.parse(s) as { component?: string; msg: string });
    },
  });
  const deps: ComponentDeps = {
    log,
    clock: systemClock,
    random: Math.random,
    exec,
    events: new EventEmitter<AgentEventMap>(),
    fatal: () => undefined,
    changed: () => undefined,
  };
  const notesOf = (name: string): string[] => {
    const out = records.filter((r) => r.component === name).map((r) => r.msg);
    records.splice(0, records.length, ...records.filter((r) => r.component !== name));
    return out;
  };
  return { deps, notesOf };
}

async function preflight(
  c: Component,
  signal: AbortSignal,
  notesOf: (name: string) => string[],
): Promise<Preflight> {
  try {
    const report = (await c.preflight?.(signal)) ?? undefined;
    return { ...(report ? { report } : {}), notes: [...(report?.notes ?? []), ...notesOf(c.name)] };
  } catch (e) {
    return { error: toAgentError(e), notes: notesOf(c.name) };
  }
}

/** A failed preflight: a failure with its code; without root, a needs-root one is skipped. */
function preflightFailed(name: string, p: Preflight, isRoot: boolean): CheckItem {
  const err = p.error!;
  const notes = p.notes.length > 0 ? { notes: p.notes } : {};
  if (!isRoot && err.code === 'AGENT_E_NOT_ROOT') {
    return {
      name,
      status: 'skip',
      code: err.code,
      detail: `not checked without root: ${err.message}`,
      ...notes,
    };
  }
  return { ...failed(name, err), ...notes };
}

function failed(name: string, err: AgentError): CheckItem {
  return {
    name,
    status: 'fail',
    code: err.code,
    detail: err.toLine().replace(/ \[[A-Z_]+\]$/, ''),
  };
}

function withNotes(item: CheckItem, notes: readonly string[] | undefined): CheckItem {
  return notes && notes.length > 0 ? { ...item, notes: [...(item.notes ?? []), ...notes] } : item;
}

// ---- the probes ----------------------------------------------------------------------------

/** The certificate set (what run's preflight checks, then key, chain, time left), then the CA. */
async function certsItems(
  config: AgentConfig,
  p: Preflight | undefined,
  isRoot: boolean,
  now: () => number,
): Promise<CheckItem[]> {
  if (p?.error) {
    const item = preflightFailed('certs', p, isRoot);
    return [item, { name: 'ca', status: 'skip', detail: 'needs the certificate set' }];
  }
  const dir = config.ca.certsDir;
  let set;
  try {
    set = await new CertStore(dir).read();
  } catch (e) {
    const item = preflightFailed('certs', { error: toAgentError(e), notes: [] }, isRoot);
    return [item, { name: 'ca', status: 'skip', detail: 'needs the certificate set' }];
  }
  const kind =
    config.ca.env === 'gcp' || (config.ca.env === 'auto' && !set.chainPem) ? 'gcp' : 'onprem';
  const at = now();
  const r = inspectSet(set, kind, dir, at);
  const who = r.issuer === 'agent' ? 'issued to this agent' : 'bootstrap set';
  let certs: CheckItem;
  if (r.problem) {
    const when =
      r.problem.code === 'AGENT_E_CERT_EXPIRED' && r.leaf
        ? ` ${formatHumanDuration(at - r.leaf.notAfter)} ago (${isoTime(r.leaf.notAfter)})`
        : '';
    certs = {
      name: 'certs',
      status: 'fail',
      code: r.problem.code,
      detail: `${r.problem.message}${when}`,
    };
  } else if (!r.leaf) {
    certs = {
      name: 'certs',
      status: 'ok',
      detail: `no certificate yet (${kind}: the first is issued at start)`,
    };
  } else {
    certs = {
      name: 'certs',
      status: 'ok',
      detail: `${who}: ${r.leaf.identity ?? '(no spiffe:// SAN)'}, serial ${r.leaf.serial}, valid until ${isoTime(r.leaf.notAfter)} (${formatHumanDuration(r.leaf.notAfter - at)} left)`,
    };
  }
  certs = withNotes(certs, p?.notes);

  let ca: CheckItem;
  if (!set.rootPem) {
    ca = {
      name: 'ca',
      status: 'skip',
      detail: `no root-cert.pem in ${dir} to check the CA against`,
    };
  } else {
    // A set with a problem is not offered as the client certificate: the CA is probed without it.
    const client = kind === 'onprem' && !r.problem && set.keyPem && set.chainPem;
    const probe = await probeCa({
      address: config.ca.address,
      serverName: config.ca.serverName,
      rootPem: set.rootPem,
      ...(client ? { client: { keyPem: set.keyPem!, chainPem: set.chainPem! } } : {}),
    });
    ca = probe.ok
      ? {
          name: 'ca',
          status: 'ok',
          detail: `${config.ca.address}: TLS handshake OK as ${config.ca.serverName} (${config.ca.api})`,
        }
      : { name: 'ca', status: 'fail', code: probe.code, detail: probe.message };
  }
  return [certs, ca];
}

async function metadataItem(config: AgentConfig): Promise<CheckItem> {
  const name = 'metadata';
  if (config.ca.env === 'onprem') return { name, status: 'skip', detail: 'CITADEL_ENV=onprem' };
  const host = config.ca.gceMetadataHost;
  const up = await detectGce({ host, timeoutMs: GCE_DETECT_TIMEOUT_MS });
  if (up) return { name, status: 'ok', detail: `${host} answers as the GCE metadata server` };
  return config.ca.env === 'gcp'
    ? {
        name,
        status: 'fail',
        code: 'AGENT_E_METADATA_UNAVAILABLE',
        detail: `${host} does not answer as the GCE metadata server within ${GCE_DETECT_TIMEOUT_MS / 1000} s; check GCE_METADATA_HOST and that this is a GCE VM`,
      }
    : { name, status: 'skip', detail: 'not on GCE (CITADEL_ENV=auto picks onprem)' };
}

/** Capture: run's preflight, then (root) the live rules against the plan. */
async function captureItem(
  config: AgentConfig,
  p: Preflight | undefined,
  isRoot: boolean,
  exec: Exec,
): Promise<CheckItem> {
  const name = 'capture';
  if (!config.capture.enabled) return { name, status: 'skip', detail: 'ISTIO_CAPTURE=false' };
  if (!p) return { name, status: 'skip', detail: 'not built' };
  if (p.error) return preflightFailed(name, p, isRoot);
  const summary = p.report?.summary ?? 'planned';
  const notes = p.notes.length > 0 ? { notes: p.notes } : {};
  try {
    const io = { exec, stateDir: config.core.stateDir };
    const record = await readRecord(io.stateDir);
    const { live, plan } = await prepare(
      io,
      config.capture,
      record.backend ?? config.capture.backend,
    );
    const drift = await diffLive(io, plan, live);
    if (drift.length === 0)
      return { name, status: 'ok', detail: `${summary}; the live rules match the plan`, ...notes };
    const shown = drift.slice(0, 4).map(driftLine);
    return {
      name,
      status: 'fail',
      code: 'AGENT_E_CAPTURE_DRIFT',
      detail: `${summary}; the live rules differ from the plan: ${shown.join('; ')}${drift.length > shown.length ? `; and ${drift.length - shown.length} more` : ''} (see \`istio-node-agent iptables diff\`; \`iptables apply\` or the daemon puts them back)`,
      ...notes,
    };
  } catch (e) {
    return { ...failed(name, toAgentError(e)), ...notes };
  }
}

/** DNS: run's preflight (dnsmasq installed, the drop-in accepted), then the host against the plan. */
async function dnsItem(
  config: AgentConfig,
  p: Preflight | undefined,
  isRoot: boolean,
): Promise<CheckItem> {
  const name = 'dns';
  const notes = p && p.notes.length > 0 ? { notes: p.notes } : {};
  if (!config.dns.enabled)
    return { name, status: 'skip', detail: 'no DNS variables set', ...notes };
  if (!p) return { name, status: 'skip', detail: 'not built' };
  if (p.error) return preflightFailed(name, p, isRoot);
  try {
    const settings = dnsSettings(config);
    const plan = planDns(settings, await probeHost(settings, '/'));
    const resolverChanges = plan.resolver.edits.length + plan.undo.length;
    if (plan.dropIn === 'unchanged' && resolverChanges === 0)
      return {
        name,
        status: 'ok',
        detail: `${plan.dropInPath} is current (${plan.names} names); resolver ${plan.resolver.kind}`,
        ...notes,
      };
    const what = [
      plan.dropIn === 'create'
        ? `${plan.dropInPath} is missing`
        : plan.dropIn === 'update'
          ? `${plan.dropInPath} differs from the configuration`
          : plan.dropIn === 'take-over'
            ? `${plan.dropInPath} was not written by the agent`
            : undefined,
      resolverChanges > 0
        ? `the resolver (${plan.resolver.kind}) is not pointed at dnsmasq as planned`
        : undefined,
    ].filter((x): x is string => x !== undefined);
    return {
      name,
      status: 'fail',
      code: 'AGENT_E_DNS_DRIFT',
      detail: `${what.join('; ')} (see \`istio-node-agent dns plan\`; \`dns apply\` or the daemon applies it)`,
      ...notes,
    };
  } catch (e) {
    return { ...failed(name, toAgentError(e)), ...notes };
  }
}

function sidecarItem(config: AgentConfig, p: Preflight | undefined, isRoot: boolean): CheckItem {
  const name = 'sidecar';
  if (config.sidecar.mode === 'none') return { name, status: 'skip', detail: 'SIDECAR_MODE=none' };
  if (!p) return { name, status: 'skip', detail: 'not built' };
  if (p.error) return preflightFailed(name, p, isRoot);
  return withNotes({ name, status: 'ok', detail: p.report?.summary ?? 'ready to start' }, p.notes);
}
