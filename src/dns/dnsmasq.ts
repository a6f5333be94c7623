import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import { under } from './files';

/**
 * The host's dnsmasq, as the DNS component needs it: check a drop-in, restart so it reads the
 * conf-dir again (dnsmasq re-reads /etc/hosts and resolv files on SIGHUP, not its
 * configuration), and the same for systemd-resolved. Tests inject their own (a real dnsmasq
 * they start in a network namespace).
 */
export interface DnsmasqControl {
  /** How dnsmasq is restarted here, for logs and `dns plan`. */
  readonly how: string;
  /** Refuses a drop-in dnsmasq would not start with (AGENT_E_DNSMASQ_REJECTED). */
  check(content: string): Promise<void>;
  /**
   * Restarts dnsmasq so it reads the drop-in (AGENT_E_DNSMASQ_RESTART on failure).
   * `onlyIfRunning`: leave a stopped dnsmasq stopped (for `dns clean`).
   */
  restart(opts?: { onlyIfRunning?: boolean }): Promise<void>;
}

export type DnsmasqDetection =
  | { readonly installed: true; readonly control: DnsmasqControl }
  | { readonly installed: false; readonly why: string };

/** Tells systemd-resolved to read its configuration again. */
export interface ResolvedControl {
  readonly how: string;
  reload(): Promise<void>;
}

const BINARIES = ['/usr/sbin/dnsmasq', '/sbin/dnsmasq', '/usr/bin/dnsmasq'];
const UNITS = [
  '/etc/systemd/system/dnsmasq.service',
  '/lib/systemd/system/dnsmasq.service',
  '/usr/lib/systemd/system/dnsmasq.service',
];
const INIT_SCRIPT = '/etc/init.d/dnsmasq';
const RESTART_TIMEOUT_MS = 90_000;

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

export async function findDnsmasqBinary(root: string): Promise<string | undefined> {
  for (const b of BINARIES) if (await exists(under(root, b))) return b;
  return undefined;
}

export async function systemdBooted(root: string): Promise<boolean> {
  return exists(under(root, '/run/systemd/system'));
}

export interface DetectOptions {
  readonly root: string;
  readonly exec: Exec;
  /**
   * False when operating on another root (an image being prepared): dnsmasq is found and
   * checked there, but nothing on the running host is restarted.
   */
  readonly touchHost: boolean;
}

/**
 * How this host runs dnsmasq: a systemd unit (`systemctl restart dnsmasq`), else the SysV
 * script. The binary alone (package dnsmasq-base, as NetworkManager installs it) does not
 * count: nothing would read the conf-dir.
 */
export async function detectDnsmasq(o: DetectOptions): Promise<DnsmasqDetection> {
  const binary = await findDnsmasqBinary(o.root);
  if (binary === undefined) return { installed: false, why: 'dnsmasq is not installed' };
  const booted = await systemdBooted(o.root);
  let unit = false;
  for (const u of UNITS) if (await exists(under(o.root, u))) unit = true;
  const init = await exists(under(o.root, INIT_SCRIPT));
  if (!unit && !init) {
    return {
      installed: false,
      why: `only ${binary} is installed (dnsmasq-base), not the dnsmasq service that reads its conf-dir`,
    };
  }
  const useSystemd = booted || !init;
  const how = useSystemd ? 'systemctl restart dnsmasq' : `${INIT_SCRIPT} restart`;
  const check = async (content: string): Promise<void> => {
    if (!o.touchHost) return;
    await checkDropIn(o.exec, binary, content);
  };
  if (!o.touchHost) {
    return {
      installed: true,
      control: {
        how: `none: --root is not this host (there it would be \`${how}\`)`,
        check,
        restart: () => Promise.resolve(),
      },
    };
  }
  const restart = async (opts: { onlyIfRunning?: boolean } = {}): Promise<void> => {
    let cmd: string;
    let args: string[];
    if (useSystemd) {
      cmd = 'systemctl';
      args = [opts.onlyIfRunning ? 'try-restart' : 'restart', 'dnsmasq.service'];
    } else {
      cmd = INIT_SCRIPT;
      args = ['restart'];
      // The SysV script has no try-restart: ask whether it runs first.
      if (
        opts.onlyIfRunning &&
        (await o.exec(INIT_SCRIPT, ['status'], { timeoutMs: 10_000 })).code !== 0
      )
        return;
    }
    const r = await o.exec(cmd, args, { timeoutMs: RESTART_TIMEOUT_MS });
    if (r.code !== 0) {
      throw new AgentError(
        'AGENT_E_DNSMASQ_RESTART',
        `${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim() || 'no output'}; see journalctl -u dnsmasq`,
        { details: { cmd, code: r.code } },
      );
    }
  };
  return { installed: true, control: { how, check, restart } };
}

/** `dnsmasq --test` on the drop-in alone, before it is installed. */
export async function checkDropIn(exec: Exec, binary: string, content: string): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'istio-dns-check-'));
  const file = path.join(dir, 'kubedns');
  try {
    await fs.writeFile(file, content, { mode: 0o644, flag: 'wx' });
    const r = await exec(binary, ['--test', `--conf-file=${file}`], { timeoutMs: 10_000 });
    if (r.code !== 0) {
      throw new AgentError(
        'AGENT_E_DNSMASQ_REJECTED',
        `dnsmasq --test refuses the new drop-in: ${(r.stderr || r.stdout).trim()}; the old one stays in place`,
      );
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export function detectResolved(o: DetectOptions): ResolvedControl {
  if (!o.touchHost)
    return {
      how: 'none: --root is not this host',
      reload: () => Promise.resolve(),
    };
  return {
    how: 'systemctl try-reload-or-restart systemd-resolved',
    async reload() {
      if (!(await systemdBooted(o.root))) return;
      const r = await o.exec('systemctl', ['try-reload-or-restart', 'systemd-resolved.service'], {
        timeoutMs: RESTART_TIMEOUT_MS,
      });
      if (r.code !== 0) {
        throw new AgentError(
          'AGENT_E_RESOLVER',
          `systemctl try-reload-or-restart systemd-resolved exited ${r.code}: ${(r.stderr || r.stdout).trim()}; see journalctl -u systemd-resolved`,
        );
      }
    },
  };
}
