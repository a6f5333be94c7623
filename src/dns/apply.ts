import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { AgentConfig, DnsConfig } from '../config/types';
import { AgentError, toAgentError } from '../lib/errors';
import type { Logger } from '../observe/logger';
import type { DnsmasqControl, DnsmasqDetection, ResolvedControl } from './dnsmasq';
import {
  ABSENT,
  ensureParents,
  loadState,
  readFileState,
  readFollowing,
  removeCreatedDirs,
  restoreState,
  sameState,
  saveState,
  sha256,
  text,
  under,
  writeRegular,
  type FileState,
} from './files';
import {
  DROP_IN_NAME,
  forwardedDomain,
  isManaged,
  localNames,
  nameCount,
  renderKubedns,
  type KubednsInput,
} from './render';
import {
  DHCLIENT_CONF,
  DHCLIENT_LEASE_DIR,
  RESOLV_CONF,
  RESOLVED_DROP_IN,
  RESOLVED_RUN_DIR,
  chooseResolver,
  planResolver,
  removeBlock,
  type ResolverFacts,
  type ResolverPlan,
} from './resolver';
import {
  EMPTY_STATE,
  readDnsState,
  statePath,
  writeDnsState,
  type ChangeRecord,
  type DnsState,
} from './state';

/** The part of the configuration DNS uses. */
export interface DnsSettings {
  readonly dns: DnsConfig;
  readonly systemNamespace: string;
  readonly stateDir: string;
}

export function dnsSettings(c: AgentConfig): DnsSettings {
  return { dns: c.dns, systemNamespace: c.core.systemNamespace, stateDir: c.core.stateDir };
}

/** The host as the DNS component sees it; tests pass a temporary root and their own controls. */
export interface DnsHost {
  /** "/" in production; every path is taken under it. */
  readonly root: string;
  detectDnsmasq(): Promise<DnsmasqDetection>;
  readonly resolved: ResolvedControl;
  now(): number;
}

export interface HostFacts {
  readonly dropIn: FileState;
  readonly resolver: ResolverFacts;
  readonly state: DnsState | undefined;
}

export type DropInAction = 'create' | 'update' | 'unchanged' | 'take-over';

export interface DnsPlan {
  /** Host path of the drop-in. */
  readonly dropInPath: string;
  readonly content: string;
  readonly dropIn: DropInAction;
  readonly dropInBefore: FileState;
  readonly names: number;
  readonly resolver: ResolverPlan;
  /** Earlier changes the current setup no longer wants (another resolver setup, another drop-in directory). */
  readonly undo: readonly ChangeRecord[];
}

export function dropInPath(s: DnsSettings): string {
  return path.join(s.dns.dropInDir, DROP_IN_NAME);
}

export function kubednsInput(s: DnsSettings, upstreamResolvFile?: string): KubednsInput {
  return {
    dnsServer: s.dns.dnsServer,
    clusterDomain: s.dns.clusterDomain,
    systemNamespace: s.systemNamespace,
    pilotIp: s.dns.pilotIp,
    citadelIp: s.dns.citadelIp,
    mixerIp: s.dns.mixerIp,
    ...(upstreamResolvFile !== undefined ? { upstreamResolvFile } : {}),
  };
}

async function firstLease(root: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await fs.readdir(under(root, DHCLIENT_LEASE_DIR));
  } catch {
    return undefined;
  }
  for (const n of names.sort()) {
    if (!/^dhclient.*\.leases?$/.test(n)) continue;
    const p = path.join(DHCLIENT_LEASE_DIR, n);
    const st = await fs.stat(under(root, p)).catch(() => undefined);
    if (st && st.isFile() && st.size > 0) return p;
  }
  return undefined;
}

/** Reads everything the plan depends on. */
export async function probeHost(s: DnsSettings, root: string): Promise<HostFacts> {
  const resolvConf = await readFileState(under(root, RESOLV_CONF));
  const resolver: ResolverFacts = {
    resolvConf,
    resolvConfFinal:
      resolvConf.kind === 'symlink' ? await readFollowing(root, RESOLV_CONF) : undefined,
    dhclientConf: await readFileState(under(root, DHCLIENT_CONF)),
    dhclientLease: await firstLease(root),
    resolvedRunning: await fs.stat(under(root, RESOLVED_RUN_DIR)).then(
      (st) => st.isDirectory(),
      () => false,
    ),
    resolvedDropIn: await readFileState(under(root, RESOLVED_DROP_IN)),
  };
  return {
    dropIn: await readFileState(under(root, dropInPath(s))),
    resolver,
    state: await readDnsState(statePath(root, s.stateDir)),
  };
}

/** Pure: what apply would do on a host with these facts. */
export function planDns(s: DnsSettings, facts: HostFacts): DnsPlan {
  const base = kubednsInput(s);
  const choice = chooseResolver(s.dns.resolver, facts.resolver);
  const domains = [forwardedDomain(base), ...localNames(base).map((n) => n.name)].filter(
    (d): d is string => d !== undefined,
  );
  const resolver = planResolver(choice, facts.resolver, { domains });
  const content = renderKubedns(kubednsInput(s, resolver.upstreamResolvFile));
  const before = facts.dropIn;
  let dropIn: DropInAction;
  if (before.kind === 'absent') dropIn = 'create';
  else if (before.kind === 'file' && isManaged(before.bytes))
    dropIn = text(before) === content ? 'unchanged' : 'update';
  else dropIn = 'take-over';
  const undo = (facts.state?.changes ?? []).filter((c) =>
    c.role === 'resolver' ? !resolver.owned.includes(c.path) : c.path !== dropInPath(s),
  );
  return {
    dropInPath: dropInPath(s),
    content,
    dropIn,
    dropInBefore: before,
    names: nameCount(base),
    resolver,
    undo,
  };
}

export interface ApplyResult {
  readonly dropIn: DropInAction;
  /** How dnsmasq was restarted, when the drop-in changed. */
  readonly restarted: string | undefined;
  /** Host paths of resolver files changed now. */
  readonly edited: readonly string[];
  readonly undone: readonly { readonly path: string; readonly outcome: UndoOutcome }[];
}

/** The host's dnsmasq control; AGENT_E_DNSMASQ_MISSING (78) when there is no dnsmasq service. */
export function installedDnsmasq(det: DnsmasqDetection): DnsmasqControl {
  if (!det.installed) {
    throw new AgentError(
      'AGENT_E_DNSMASQ_MISSING',
      `DNS is configured (ISTIO_DNS_SERVER or ISTIO_*_IP) but ${det.why}: install the package with \`apt-get install dnsmasq\``,
    );
  }
  return det.control;
}

/**
 * What start checks before anything changes: dnsmasq is installed as a service, the change
 * record is readable, and `dnsmasq --test` accepts the drop-in it would write.
 */
export async function preflightDns(s: DnsSettings, host: DnsHost): Promise<void> {
  const control = installedDnsmasq(await host.detectDnsmasq());
  const plan = planDns(s, await probeHost(s, host.root));
  if (plan.dropIn !== 'unchanged') await control.check(plan.content);
}

/**
 * Every path an apply of `plan` may change, as it is now, with the record: what a failed start
 * puts back (restoreSnapshot). Directories an apply would create are noted too.
 */
export interface DnsSnapshot {
  readonly files: ReadonlyMap<string, FileState>;
  /** Missing ancestors of each path (host paths, outermost first). */
  readonly missingDirs: ReadonlyMap<string, readonly string[]>;
  readonly state: DnsState | undefined;
}

export async function snapshotDns(
  plan: DnsPlan,
  facts: HostFacts,
  host: DnsHost,
  earlier: DnsSnapshot | undefined,
): Promise<DnsSnapshot> {
  const files = new Map(earlier?.files ?? []);
  const missingDirs = new Map(earlier?.missingDirs ?? []);
  const paths = [
    ...plan.resolver.edits.map((e) => e.path),
    ...plan.undo.map((u) => u.path),
    plan.dropInPath,
  ];
  for (const p of paths) {
    if (files.has(p)) continue;
    files.set(p, await readFileState(under(host.root, p)));
    const missing: string[] = [];
    for (let d = path.dirname(p); d !== path.dirname(d); d = path.dirname(d)) {
      if (
        await fs.stat(under(host.root, d)).then(
          () => true,
          () => false,
        )
      )
        break;
      missing.unshift(d);
    }
    missingDirs.set(p, missing);
  }
  return { files, missingDirs, state: earlier ? earlier.state : facts.state };
}

function identical(a: FileState, b: FileState): boolean {
  if (!sameState(a, b)) return false;
  return (
    a.kind !== 'file' ||
    b.kind !== 'file' ||
    (a.mode === b.mode && a.uid === b.uid && a.gid === b.gid)
  );
}

/**
 * Puts every path of the snapshot back exactly as it was (resolver files first, then the
 * drop-in), removes the directories the apply created, restores the change record, and lets
 * dnsmasq (and systemd-resolved) read the restored configuration. Returns the paths restored.
 */
export async function restoreSnapshot(
  snap: DnsSnapshot,
  s: DnsSettings,
  host: DnsHost,
  log: Logger,
): Promise<string[]> {
  const restored: string[] = [];
  const drop = dropInPath(s);
  const order = [...snap.files.keys()].sort((a, b) => Number(a === drop) - Number(b === drop));
  for (const p of order) {
    const before = snap.files.get(p)!;
    const real = under(host.root, p);
    if (identical(await readFileState(real), before)) continue;
    await restoreState(real, before);
    await removeCreatedDirs((snap.missingDirs.get(p) ?? []).map((d) => under(host.root, d)));
    restored.push(p);
    log.info({ file: p }, `put ${p} back as it was before this start`);
  }
  await writeDnsState(statePath(host.root, s.stateDir), snap.state ?? EMPTY_STATE);
  const dropIns = restored.filter((p) => !isResolverPath(p));
  if (dropIns.length > 0) {
    const det = await host.detectDnsmasq();
    if (det.installed) await det.control.restart({ onlyIfRunning: true });
  }
  if (restored.includes(RESOLVED_DROP_IN)) await host.resolved.reload();
  return restored;
}

function isResolverPath(p: string): boolean {
  return [RESOLV_CONF, DHCLIENT_CONF, RESOLVED_DROP_IN].includes(p);
}

/**
 * Makes the host match the plan: the drop-in (checked by dnsmasq first, dnsmasq restarted only
 * when it changed, the old one put back if dnsmasq does not come up), then the resolver.
 */
export async function applyDns(
  s: DnsSettings,
  plan: DnsPlan,
  facts: HostFacts,
  host: DnsHost,
  log: Logger,
): Promise<ApplyResult> {
  const control = installedDnsmasq(await host.detectDnsmasq());
  const det = { control };
  const journal = new Journal(statePath(host.root, s.stateDir), facts.state ?? EMPTY_STATE, host);

  // Earlier resolver changes this setup does not use any more (the setup or its detection changed).
  const undone: { path: string; outcome: UndoOutcome }[] = [];
  let oldDropInGone = false;
  for (const rec of [...plan.undo].reverse()) {
    const outcome = await undoChange(host.root, rec, log);
    undone.push({ path: rec.path, outcome });
    if (rec.role === 'drop-in' && outcome !== 'already-original' && outcome !== 'left-alone') {
      oldDropInGone = true;
    }
    await journal.drop(rec.path);
  }

  let restarted: string | undefined;
  if (plan.dropIn === 'unchanged' && oldDropInGone) {
    await det.control.restart();
    restarted = det.control.how;
  }
  if (plan.dropIn !== 'unchanged') {
    await det.control.check(plan.content);
    if (plan.dropIn === 'take-over') {
      log.warn(
        { file: plan.dropInPath, state: journal.file },
        `replacing the hand-placed ${plan.dropInPath}; it is kept in ${journal.file} and put back by \`istio-node-agent dns clean\``,
      );
    }
    try {
      await writeRecorded(
        host,
        journal,
        plan.dropInPath,
        'drop-in',
        plan.dropInBefore,
        plan.content,
        { mode: 0o644 },
        undefined,
      );
    } catch (e) {
      throw new AgentError(
        'AGENT_E_IO',
        `cannot write ${plan.dropInPath}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    try {
      await det.control.restart();
      restarted = det.control.how;
    } catch (e) {
      const err = toAgentError(e, 'AGENT_E_DNSMASQ_RESTART');
      log.error(
        { file: plan.dropInPath, err: err.message },
        'dnsmasq did not restart with the new drop-in; putting the previous one back',
      );
      await restoreState(under(host.root, plan.dropInPath), plan.dropInBefore);
      await journal.revert(plan.dropInPath, plan.dropInBefore);
      await det.control.restart().catch(() => undefined);
      throw new AgentError(err.code, `${err.message} (the previous drop-in was put back)`, {
        cause: err,
      });
    }
    log.info(
      { file: plan.dropInPath, action: plan.dropIn, restart: det.control.how },
      `dnsmasq drop-in ${plan.dropIn === 'create' ? 'written' : 'updated'}; dnsmasq restarted`,
    );
  }

  const edited: string[] = [];
  for (const e of plan.resolver.edits) {
    try {
      await writeRecorded(host, journal, e.path, 'resolver', e.before, e.after, e, e.block);
    } catch (err) {
      throw new AgentError(
        'AGENT_E_RESOLVER',
        `cannot change ${e.path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    edited.push(e.path);
    log.info(
      { file: e.path, action: e.action, resolver: plan.resolver.kind },
      `resolver: ${e.action} ${e.path}`,
    );
  }
  if (
    plan.resolver.reloadResolved ||
    undone.some(
      (u) =>
        u.path === RESOLVED_DROP_IN &&
        (u.outcome === 'restored' || u.outcome === 'removed' || u.outcome === 'removed-block'),
    )
  ) {
    await host.resolved.reload();
  }
  await journal.setResolver({ kind: plan.resolver.kind, reason: plan.resolver.reason });
  return { dropIn: plan.dropIn, restarted, edited, undone };
}

async function writeRecorded(
  host: DnsHost,
  journal: Journal,
  hostPath: string,
  role: ChangeRecord['role'],
  before: FileState,
  after: string,
  owner: { mode: number; uid?: number | undefined; gid?: number | undefined },
  block: string | undefined,
): Promise<void> {
  const real = under(host.root, hostPath);
  const created = await ensureParents(real);
  await journal.record(
    hostPath,
    role,
    before,
    after,
    block,
    created.map((d) => '/' + path.relative(host.root, d)),
  );
  await writeRegular(real, after, {
    mode: owner.mode,
    ...(owner.uid !== undefined && owner.gid !== undefined
      ? { uid: owner.uid, gid: owner.gid }
      : {}),
  });
}

/** The change record, saved before each change it describes. */
class Journal {
  constructor(
    readonly file: string,
    private state: DnsState,
    private readonly host: DnsHost,
  ) {}

  async record(
    p: string,
    role: ChangeRecord['role'],
    before: FileState,
    after: string,
    block: string | undefined,
    createdDirs: string[],
  ): Promise<void> {
    const prev = this.state.changes.find((c) => c.path === p);
    // Our earlier change is still in place: the original stays what it was before it.
    const stillOurs =
      prev !== undefined && before.kind === 'file' && sha256(before.bytes) === prev.writtenSha256;
    const rec: ChangeRecord = stillOurs
      ? { ...prev, writtenSha256: sha256(after), ...(block !== undefined ? { block } : {}) }
      : {
          path: p,
          role,
          // A managed file with no record (the record was lost) is ours: its original is nothing.
          original: saveState(before.kind === 'file' && isManaged(before.bytes) ? ABSENT : before),
          writtenSha256: sha256(after),
          ...(block !== undefined ? { block } : {}),
          createdDirs: [...(prev?.createdDirs ?? []), ...createdDirs],
          since: new Date(this.host.now()).toISOString(),
        };
    await this.put(rec);
  }

  /** After a failed change was rolled back to `before`. */
  async revert(p: string, before: FileState): Promise<void> {
    const rec = this.state.changes.find((c) => c.path === p);
    if (!rec) return;
    if (sameState(loadState(rec.original), before)) return this.drop(p);
    if (before.kind === 'file') await this.put({ ...rec, writtenSha256: sha256(before.bytes) });
  }

  async drop(p: string): Promise<void> {
    this.state = { ...this.state, changes: this.state.changes.filter((c) => c.path !== p) };
    await writeDnsState(this.file, this.state);
  }

  async setResolver(r: DnsState['resolver']): Promise<void> {
    this.state = { ...this.state, ...(r ? { resolver: r } : {}) };
    await writeDnsState(this.file, this.state);
  }

  private async put(rec: ChangeRecord): Promise<void> {
    this.state = {
      ...this.state,
      changes: [...this.state.changes.filter((c) => c.path !== rec.path), rec],
    };
    await writeDnsState(this.file, this.state);
  }
}

/**
 * restored: the original is back (a file, or a symlink); removed: the path did not exist before,
 * so it is gone again; removed-block: the file was edited since, only the agent's lines were
 * taken out; already-original: nothing of the change was there; left-alone: rewritten since.
 */
export type UndoOutcome =
  'restored' | 'removed' | 'removed-block' | 'already-original' | 'left-alone';

/**
 * Undoes one recorded change: the file as the agent left it gets its original back exactly;
 * a file edited since keeps the edits and loses only the agent's inserted lines; a file
 * rewritten by something else is left alone.
 */
export async function undoChange(
  root: string,
  rec: ChangeRecord,
  log: Logger,
): Promise<UndoOutcome> {
  const real = under(root, rec.path);
  const cur = await readFileState(real);
  const original = loadState(rec.original);
  if (cur.kind === 'file' && sha256(cur.bytes) === rec.writtenSha256) {
    return restoreOriginal(root, rec, original, log);
  }
  if (sameState(cur, original)) return 'already-original';
  if (cur.kind === 'file' && rec.block !== undefined) {
    const without = removeBlock(cur.bytes.toString('utf8'), rec.block);
    if (without !== undefined) {
      await writeRegular(real, without, { mode: cur.mode, uid: cur.uid, gid: cur.gid });
      log.info(
        { file: rec.path },
        `${rec.path} was changed since; removed only the lines the agent added`,
      );
      return 'removed-block';
    }
  }
  if (cur.kind === 'file' && isManaged(cur.bytes)) return restoreOriginal(root, rec, original, log);
  log.warn(
    { file: rec.path },
    `${rec.path} was rewritten since the agent changed it; left as it is`,
  );
  return 'left-alone';
}

async function restoreOriginal(
  root: string,
  rec: ChangeRecord,
  original: FileState,
  log: Logger,
): Promise<UndoOutcome> {
  await restoreState(under(root, rec.path), original);
  await removeCreatedDirs(rec.createdDirs.map((d) => under(root, d)));
  const outcome = original.kind === 'absent' ? 'removed' : 'restored';
  log.info({ file: rec.path, outcome }, `${outcome} ${rec.path}`);
  return outcome;
}

export interface CleanResult {
  readonly undone: readonly { readonly path: string; readonly outcome: UndoOutcome }[];
  /** How dnsmasq was restarted, when the drop-in changed. */
  readonly restarted: string | undefined;
  readonly notes: readonly string[];
}

/** Undoes everything the record names (resolver first), and removes a managed drop-in. */
export async function cleanDns(s: DnsSettings, host: DnsHost, log: Logger): Promise<CleanResult> {
  const file = statePath(host.root, s.stateDir);
  const state = (await readDnsState(file)) ?? EMPTY_STATE;
  const undone: { path: string; outcome: UndoOutcome }[] = [];
  const notes: string[] = [];
  let remaining = state;
  const forget = async (p: string): Promise<void> => {
    remaining = { ...remaining, changes: remaining.changes.filter((c) => c.path !== p) };
    await writeDnsState(file, remaining);
  };

  // Resolver first: stop sending queries to dnsmasq before it loses the names.
  let resolvedTouched = false;
  for (const rec of [...state.changes].reverse().filter((c) => c.role === 'resolver')) {
    let outcome: UndoOutcome;
    try {
      outcome = await undoChange(host.root, rec, log);
    } catch (e) {
      throw new AgentError(
        'AGENT_E_RESOLVER',
        `cannot restore ${rec.path}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    undone.push({ path: rec.path, outcome });
    if (rec.path === RESOLVED_DROP_IN && outcome !== 'left-alone' && outcome !== 'already-original')
      resolvedTouched = true;
    if (rec.path === DHCLIENT_CONF && outcome !== 'already-original') {
      notes.push('dhclient writes resolv.conf without 127.0.0.1 from its next lease renewal');
    }
    await forget(rec.path);
  }
  if (resolvedTouched) await host.resolved.reload();

  let dropInChanged = false;
  const dropIns = state.changes.filter((c) => c.role === 'drop-in');
  for (const rec of dropIns) {
    const outcome = await undoChange(host.root, rec, log);
    undone.push({ path: rec.path, outcome });
    if (outcome === 'restored' || outcome === 'removed' || outcome === 'removed-block')
      dropInChanged = true;
    await forget(rec.path);
  }
  // A managed drop-in without a record (state lost, or written by an older agent).
  const current = dropInPath(s);
  if (!dropIns.some((r) => r.path === current)) {
    const cur = await readFileState(under(host.root, current));
    if (cur.kind === 'file' && isManaged(cur.bytes)) {
      await restoreState(under(host.root, current), ABSENT);
      undone.push({ path: current, outcome: 'removed' });
      dropInChanged = true;
    } else if (cur.kind !== 'absent') {
      notes.push(`${current} is not the agent's (no header); left alone`);
    }
  }

  let restarted: string | undefined;
  if (dropInChanged) {
    const det = await host.detectDnsmasq();
    if (det.installed) {
      await det.control.restart({ onlyIfRunning: true });
      restarted = det.control.how;
    } else {
      notes.push(`dnsmasq not restarted: ${det.why}`);
    }
  }
  await writeDnsState(file, { ...remaining, changes: [] });
  return { undone, restarted, notes };
}

/** When DNS is off: what the drop-in directory holds, for the log and `dns plan`. */
export async function offNote(
  s: DnsSettings,
  root: string,
): Promise<{ managed: boolean; message: string } | undefined> {
  const p = dropInPath(s);
  const cur = await readFileState(under(root, p));
  if (cur.kind === 'absent') return undefined;
  if (cur.kind === 'file' && isManaged(cur.bytes)) {
    return {
      managed: true,
      message: `${p} was written by the agent but no DNS variables are set any more; it stays until \`istio-node-agent dns clean\``,
    };
  }
  return {
    managed: false,
    message: `${p} was placed by hand and no DNS variables are set: the agent leaves it alone`,
  };
}
