import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import { hasOurs, oursIn, parseSave, type SavedTable } from './live';
import type { IpFamily } from './plan';

export type BackendName = 'nft' | 'legacy';

const PREFIX: Record<IpFamily, string> = { 4: 'iptables', 6: 'ip6tables' };

export function saveCommand(b: BackendName, f: IpFamily): string {
  return `${PREFIX[f]}-${b}-save`;
}

export function restoreCommand(b: BackendName, f: IpFamily): string {
  return `${PREFIX[f]}-${b}-restore`;
}

/** The real path of `cmd` as a PATH lookup finds it, or undefined when it is not there. */
export async function commandPath(
  cmd: string,
  searchPath = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
): Promise<string | undefined> {
  for (const dir of searchPath.split(':')) {
    if (!dir) continue;
    const real = await fs.realpath(path.join(dir, cmd)).catch(() => undefined);
    if (real !== undefined) return real;
  }
  return undefined;
}

/**
 * Whether the save and restore programs of a family are one executable (Debian's
 * xtables-nft-multi and xtables-legacy-multi are, by their links): then a save that ran proves
 * the restore program runs too, without starting it.
 */
export async function sameProgram(a: string, b: string, searchPath?: string): Promise<boolean> {
  const [pa, pb] = await Promise.all([commandPath(a, searchPath), commandPath(b, searchPath)]);
  return pa !== undefined && pa === pb;
}

/** Seconds iptables-restore waits for the xtables lock (legacy) before giving up. */
export const LOCK_WAIT_S = 10;
export const RESTORE_ARGS = ['--noflush', '-w', String(LOCK_WAIT_S)] as const;

interface SaveOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `<family>tables-<backend>-save`; undefined when that tool or the kernel side is unusable. */
async function runSave(exec: Exec, b: BackendName, f: IpFamily): Promise<SaveOutput | undefined> {
  try {
    const r = await exec(saveCommand(b, f), []);
    return r.code === 0 ? r : undefined;
  } catch {
    return undefined;
  }
}

export async function trySave(
  exec: Exec,
  b: BackendName,
  f: IpFamily,
): Promise<string | undefined> {
  return (await runSave(exec, b, f))?.stdout;
}

/** iptables-nft-save says so on stderr when legacy tables exist beside the nft ones. */
const LEGACY_PRESENT = /legacy tables present/;

/** What was read from the host: the backend in use and the live tables of each family. */
export interface LiveState {
  readonly backend: BackendName;
  /** Why this backend: for logs and `--json`. */
  readonly reason: string;
  /**
   * Each family's tables as that backend's save printed them: the families this host can
   * program (6 is absent without a usable ip6tables, or when it was not read).
   */
  readonly tables: ReadonlyMap<IpFamily, readonly SavedTable[]>;
}

/** The families that were read (those the host can program), in order. */
export function families(live: LiveState): IpFamily[] {
  return [...live.tables.keys()].sort();
}

function detected(
  backend: BackendName,
  reason: string,
  v4: string,
  v6: string | undefined,
): LiveState {
  const tables = new Map<IpFamily, SavedTable[]>([[4, parseSave(v4)]]);
  if (v6 !== undefined) tables.set(6, parseSave(v6));
  return { backend, reason, tables };
}

function ruleCount(t: readonly SavedTable[]): number {
  return t.reduce((n, x) => n + x.rules.length, 0);
}

export interface ReadOptions {
  /** Also read ip6tables (default true). False when no IPv6 rule of ours can exist. */
  readonly ipv6?: boolean;
  /**
   * The host's default iptables, as `iptables -V` prints it ("iptables v1.8.9 (nf_tables)").
   * Default: Debian's alternatives link, read from the filesystem (no program); `iptables -V`
   * when there is no such link.
   */
  readonly defaultVersion?: () => Promise<string>;
}

const ALTERNATIVES_LINK = '/etc/alternatives/iptables';

async function hostDefault(exec: Exec): Promise<string> {
  try {
    const target = await fs.readlink(ALTERNATIVES_LINK);
    if (/legacy/.test(target)) return '(legacy) via alternatives';
    if (/nft/.test(target)) return '(nf_tables) via alternatives';
  } catch {
    /* no alternatives system: ask iptables */
  }
  return exec('iptables', ['-V']).then(
    (r) => r.stdout,
    () => '',
  );
}

function saveFamily(
  exec: Exec,
  b: BackendName,
  f: IpFamily,
  on: boolean,
): Promise<SaveOutput | undefined> {
  return on ? runSave(exec, b, f) : Promise.resolve(undefined);
}

/** Reads both families with a known backend. */
export async function readWith(
  exec: Exec,
  backend: BackendName,
  reason: string,
  opts: ReadOptions = {},
): Promise<LiveState> {
  const [v4, v6] = await Promise.all([
    runSave(exec, backend, 4),
    saveFamily(exec, backend, 6, opts.ipv6 ?? true),
  ]);
  if (v4 === undefined) {
    throw new AgentError(
      'AGENT_E_IPTABLES_BACKEND',
      `${saveCommand(backend, 4)} does not work on this host; install iptables${reason === 'configured' ? ' or set ISTIO_IPTABLES_BACKEND=auto' : ''}`,
    );
  }
  return detected(backend, reason, v4.stdout, v6?.stdout);
}

/**
 * Picks the iptables backend and reads the live tables with it, in as few programs as possible.
 * Explicit: that backend. Auto: the one that already holds our chains (a previous apply), else the
 * one holding more rules (where the host's firewall lives, as Kubernetes' iptables-wrapper
 * decides), else the host's default (Debian's alternatives, or `iptables -V`), else nft.
 *
 * The common case costs two programs run side by side (iptables-nft-save, ip6tables-nft-save):
 * iptables-nft-save reports on stderr when legacy tables exist, so the legacy tools run only when
 * there is something to compare.
 */
export async function detectBackend(
  exec: Exec,
  want: 'auto' | BackendName,
  opts: ReadOptions = {},
): Promise<LiveState> {
  if (want !== 'auto') return readWith(exec, want, 'configured', opts);
  const ipv6 = opts.ipv6 ?? true;
  const defaultVersion = (): Promise<string> =>
    (opts.defaultVersion ?? (() => hostDefault(exec)))();
  const [nft4, nft6] = await Promise.all([
    runSave(exec, 'nft', 4),
    saveFamily(exec, 'nft', 6, ipv6),
  ]);
  const legacyPresent = nft4 === undefined || LEGACY_PRESENT.test(nft4.stderr);
  const nft = nft4 === undefined ? undefined : parseSave(nft4.stdout);
  if (nft && !legacyPresent) {
    // Legacy holds no tables at all: nothing to compare against.
    if (nft.some((t) => hasOurs(oursIn(t))))
      return detected('nft', 'our rules are there', nft4.stdout, nft6?.stdout);
    if (ruleCount(nft) > 0)
      return detected('nft', "it holds the host's rules", nft4.stdout, nft6?.stdout);
    const v = await defaultVersion();
    if (!/\(legacy\)/.test(v))
      return detected(
        'nft',
        /nf_tables/.test(v) ? 'the host default' : 'default',
        nft4.stdout,
        nft6?.stdout,
      );
    return readWith(exec, 'legacy', 'the host default', opts);
  }
  const [legacy4, legacy6] = await Promise.all([
    runSave(exec, 'legacy', 4),
    saveFamily(exec, 'legacy', 6, ipv6),
  ]);
  if (!nft4 && !legacy4) {
    throw new AgentError(
      'AGENT_E_IPTABLES_BACKEND',
      'neither iptables-nft-save nor iptables-legacy-save works on this host; install iptables (and the kernel netfilter modules)',
    );
  }
  if (!legacy4) return detected('nft', 'only nft is usable', nft4!.stdout, nft6?.stdout);
  if (!nft4) return detected('legacy', 'only legacy is usable', legacy4.stdout, legacy6?.stdout);
  const legacy = parseSave(legacy4.stdout);
  const oursNft = nft!.some((t) => hasOurs(oursIn(t)));
  const oursLegacy = legacy.some((t) => hasOurs(oursIn(t)));
  const pick = (b: BackendName, reason: string): LiveState =>
    b === 'nft'
      ? detected('nft', reason, nft4.stdout, nft6?.stdout)
      : detected('legacy', reason, legacy4.stdout, legacy6?.stdout);
  if (oursNft !== oursLegacy) return pick(oursNft ? 'nft' : 'legacy', 'our rules are there');
  const nNft = ruleCount(nft!);
  const nLegacy = ruleCount(legacy);
  if (nNft !== nLegacy)
    return pick(
      nNft > nLegacy ? 'nft' : 'legacy',
      `it holds more of the host's rules (nft ${nNft}, legacy ${nLegacy})`,
    );
  const v = await defaultVersion();
  if (/\(legacy\)/.test(v)) return pick('legacy', 'the host default');
  return pick('nft', /nf_tables/.test(v) ? 'the host default' : 'default');
}
