import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../observe/index';
import {
  readFileState,
  removeCreatedDirs,
  restoreState,
  sameState,
  under,
  type FileState,
} from './files';
import type { DnsHost } from './host';
import type { DnsPlan } from './plan';
import type { HostFacts } from './probe';
import { DHCLIENT_CONF, RESOLV_CONF, RESOLVED_DROP_IN } from './resolver';
import { dropInPath, type DnsSettings } from './settings';
import { EMPTY_STATE, statePath, writeDnsState, type DnsState } from './state';

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

/** Adds the paths `plan` may change to `earlier` (a start may apply more than once). */
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

/** The same content, and for files the same mode and owner. */
function identical(a: FileState, b: FileState): boolean {
  if (!sameState(a, b)) return false;
  return (
    a.kind !== 'file' ||
    b.kind !== 'file' ||
    (a.mode === b.mode && a.uid === b.uid && a.gid === b.gid)
  );
}

function isResolverPath(p: string): boolean {
  return [RESOLV_CONF, DHCLIENT_CONF, RESOLVED_DROP_IN].includes(p);
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
