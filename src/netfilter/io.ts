import type { CaptureConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import {
  detectBackend,
  families,
  readWith,
  restoreCommand,
  RESTORE_ARGS,
  type BackendName,
  type LiveState,
  type ReadOptions,
} from './backend';
import { familyName, planCapture, wantsIpv6, type CapturePlan, type IpFamily } from './plan';
import { readRecord } from './state';
import { resolveProxyIds, type ResolvedIds } from '../host/users';

/**
 * The host side of capture, reading and writing: the live rules, and one iptables-restore
 * transaction. Every program runs through the injected Exec (tests run them inside a network
 * namespace).
 */

export interface CaptureIo {
  readonly exec: Exec;
  /** The agent's state directory (records what clean must undo besides our chains). */
  readonly stateDir: string;
}

/** Detects (or uses) the backend and reads the tables (both families unless told otherwise). */
export async function readLive(
  io: CaptureIo,
  want: 'auto' | BackendName,
  opts: ReadOptions = {},
): Promise<LiveState> {
  return detectBackend(io.exec, want, opts);
}

/** Reads both families with a known backend (the daemon's periodic check). */
export async function readLiveWith(
  io: CaptureIo,
  backend: BackendName,
  reason: string,
): Promise<LiveState> {
  return readWith(io.exec, backend, reason);
}

export interface Prepared {
  readonly live: LiveState;
  readonly plan: CapturePlan;
  readonly resolved: ResolvedIds;
}

export interface PrepareOptions {
  /** Skip ip6tables when no IPv6 rule of ours can exist (the CLI's `apply`, to start fewer programs). */
  readonly skipUnusedIpv6?: boolean;
}

/**
 * Reads the live rules and, side by side, looks up the proxy user; then plans for the families
 * the host can program. Changes nothing. A configured ENVOY_USER that does not exist rejects
 * with AGENT_E_USER_UNKNOWN (exit 78).
 */
export async function prepare(
  io: CaptureIo,
  cfg: CaptureConfig,
  want: 'auto' | BackendName = cfg.backend,
  opts: PrepareOptions = {},
): Promise<Prepared> {
  // ip6tables is read unless nothing of ours can be there: the config wants no IPv6 and the
  // state record says no earlier apply put rules there. (diff, clean and the daemon's checks
  // always read both.)
  const ipv6 =
    !opts.skipUnusedIpv6 || wantsIpv6(cfg) || (await readRecord(io.stateDir)).families.includes(6);
  const [resolved, live] = await Promise.all([
    resolveProxyIds(cfg, io.exec),
    readLive(io, want, { ipv6 }),
  ]);
  return { live, resolved, plan: planCapture(cfg, resolved.ids, families(live)) };
}

/** One family's `iptables-restore --noflush` input. */
export interface Transaction {
  readonly family: IpFamily;
  readonly input: string;
}

/** Runs one transaction; AGENT_E_IPTABLES_APPLY when refused (the family's rules are unchanged). */
export async function restore(io: CaptureIo, backend: BackendName, tx: Transaction): Promise<void> {
  const cmd = restoreCommand(backend, tx.family);
  const r = await io.exec(cmd, RESTORE_ARGS, { input: tx.input, timeoutMs: 30_000 });
  if (r.code !== 0) {
    throw new AgentError(
      'AGENT_E_IPTABLES_APPLY',
      `${cmd} refused the ${familyName(tx.family)} rules, which are unchanged: ${r.stderr.trim().split('\n')[0] ?? ''}`,
      { details: { cmd, code: r.code, stderr: r.stderr, input: tx.input } },
    );
  }
}
