/**
 * `cluster setup` (Istio 1.0 `setupMeshEx.sh machineSetup`): copy a VM's bundle with the system's
 * ssh/scp (or the commands in ISTIO_RUN/ISTIO_CP, as 1.0), retrying the copy as 1.0 did (10
 * tries, 10 s apart); place the files as root with the bundle's install.sh (installing the
 * package first if asked); remove the copy; start or restart the unit; wait for
 * `istio-node-agent status` to say ready.
 */
import * as path from 'node:path';
import type { Clock } from '../lib/clock';
import { AgentError } from '../lib/errors';
import type { Exec, ExecResult } from '../lib/exec';
import { formatDuration } from '../lib/duration';
import { UNIT } from './bundle';

export const DEFAULT_SSH = 'ssh -o BatchMode=yes -o ConnectTimeout=15';
export const DEFAULT_SCP = 'scp -q -o BatchMode=yes -o ConnectTimeout=15';
export const DEFAULT_START = `systemctl {action} ${UNIT}`;
export const DEFAULT_STATUS = 'istio-node-agent status';

/** One command template: words, with `{host}`, `{command}`, `{src}`, `{dest}` placeholders. */
export type CommandTemplate = readonly string[];

/** Splits a command line on blanks (no shell: quoting is not interpreted). */
export function parseTemplate(text: string): CommandTemplate {
  return text.split(/\s+/).filter((w) => w !== '');
}

/** `ssh … HOST COMMAND`, or the template's own placement of {host} and {command}. */
export function sshArgv(t: CommandTemplate, host: string, command: string): string[] {
  if (!t.some((w) => w.includes('{host}') || w.includes('{command}'))) return [...t, host, command];
  return t.map((w) => (w === '{command}' ? command : w.replaceAll('{host}', host)));
}

/** `scp … SRC… HOST:DEST`, or the template's placement; `{src}` stands for all the files. */
export function scpArgv(
  t: CommandTemplate,
  src: readonly string[],
  host: string,
  dest: string,
): string[] {
  if (!t.some((w) => /\{(src|host|dest)\}/.test(w))) return [...t, ...src, `${host}:${dest}`];
  return t.flatMap((w) =>
    w === '{src}' ? [...src] : [w.replaceAll('{host}', host).replaceAll('{dest}', dest)],
  );
}

/** Single-quotes a word for the remote shell. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `changed: …` line install.sh prints last; empty when nothing changed. */
export function parseChanged(output: string): string[] | undefined {
  const line = output
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('changed:'));
  if (line === undefined) return undefined;
  const rest = line.slice('changed:'.length).trim();
  return rest === 'nothing' ? [] : rest.split(/\s+/);
}

export interface SetupOptions {
  readonly host: string;
  readonly ssh: CommandTemplate;
  readonly scp: CommandTemplate;
  /** Where the bundle is copied on the VM (relative: to the login directory). */
  readonly remoteDir: string;
  /** `--remote-root`: install.sh --root. */
  readonly remoteRoot?: string;
  /** Prefix for commands that need root on the VM (`sudo -n`; empty when logging in as root). */
  readonly sudo: readonly string[];
  readonly replaceCerts: boolean;
  /** The package to copy and install, and how. */
  readonly deb?: string;
  readonly installCommand?: string;
  /** Run on the VM with {action} = start or restart. */
  readonly startCommand: string;
  readonly statusCommand: string;
  readonly copyAttempts: number;
  readonly copyDelayMs: number;
  readonly readyTimeoutMs: number;
  readonly pollMs: number;
}

/** What `cluster setup`'s flags say of how to reach the VM; unset ones take the defaults. */
export interface ReachInput {
  /** `[USER@]HOST`. */
  readonly host: string;
  readonly vm: string;
  readonly ssh?: string;
  readonly scp?: string;
  readonly sudo?: string;
  readonly remoteDir?: string;
}

/**
 * How to reach the VM: `--ssh`/`--scp`, else Istio 1.0's ISTIO_RUN/ISTIO_CP (from `env`), else
 * ssh and scp in batch mode; commands as root behind `sudo -n`, or none when logging in as
 * root; the copy in `istio-node-agent-VM` in the login directory. Returns the problem as text.
 */
export function reachVm(
  i: ReachInput,
  env: NodeJS.ProcessEnv,
): Pick<SetupOptions, 'ssh' | 'scp' | 'sudo' | 'remoteDir'> | string {
  const ssh = parseTemplate(i.ssh ?? (env.ISTIO_RUN || DEFAULT_SSH));
  const scp = parseTemplate(i.scp ?? (env.ISTIO_CP || DEFAULT_SCP));
  if (ssh.length === 0 || scp.length === 0) return '--ssh and --scp cannot be empty';
  return {
    ssh,
    scp,
    sudo: parseTemplate(i.sudo ?? (i.host.startsWith('root@') ? '' : 'sudo -n')),
    remoteDir: i.remoteDir ?? `istio-node-agent-${i.vm}`,
  };
}

export interface SetupDeps {
  readonly exec: Exec;
  readonly clock: Clock;
  readonly progress: (line: string) => void;
}

export interface SetupResult {
  readonly copyAttempts: number;
  readonly changed: readonly string[];
  readonly action: 'start' | 'restart';
  readonly status: string;
}

const SSH_FAILED = 255; // ssh's own failure (connection, authentication), not the command's

function lastLines(r: ExecResult): string {
  const text = `${r.stderr}\n${r.stdout}`.trim().split('\n');
  return text.slice(-5).join(' | ') || `exit ${r.code}`;
}

/**
 * Runs the setup. `bundleDir` holds the files named in `files` (made by `cluster bundle`).
 */
export async function setupVm(
  bundleDir: string,
  files: readonly string[],
  o: SetupOptions,
  d: SetupDeps,
): Promise<SetupResult> {
  const remote = (cmd: string): string[] => sshArgv(o.ssh, o.host, cmd);
  const dir = o.remoteDir.replace(/\/+$/, '');
  const run = (argv: readonly string[], timeoutMs = 10 * 60_000): Promise<ExecResult> =>
    d.exec(argv[0]!, argv.slice(1), { timeoutMs });
  const sudo = o.sudo.map(shq).join(' ');
  const asRoot = (cmd: string): string => (sudo ? `${sudo} ${cmd}` : cmd);

  // 1. Copy, with 1.0's retries: make the folder (0700: key.pem goes in), then the files.
  const local = files.map((f) => path.join(bundleDir, f));
  if (o.deb !== undefined) local.push(o.deb);
  let attempt = 0;
  for (;;) {
    attempt++;
    const mk = await run(remote(`mkdir -p -m 0700 ${shq(dir)} && chmod 0700 ${shq(dir)}`));
    const cp = mk.code === 0 ? await run(scpArgv(o.scp, local, o.host, `${dir}/`)) : mk;
    if (cp.code === 0) break;
    if (attempt >= o.copyAttempts) {
      throw new AgentError(
        'AGENT_E_CLUSTER_SSH',
        `copying the bundle to ${o.host}:${dir} failed ${attempt} times: ${lastLines(cp)}`,
      );
    }
    d.progress(
      `copy to ${o.host} failed (attempt ${attempt} of ${o.copyAttempts}): ${lastLines(cp)}; again in ${formatDuration(o.copyDelayMs)}`,
    );
    await d.clock.sleep(o.copyDelayMs);
  }
  d.progress(
    `copied ${local.length} files to ${o.host}:${dir}${attempt > 1 ? ` (attempt ${attempt})` : ''}`,
  );

  // 2. Place the files as root; then remove the copy (it holds the private key) whatever happened.
  const args = [
    ...(o.remoteRoot !== undefined ? ['--root', o.remoteRoot] : []),
    ...(o.deb !== undefined ? ['--deb', `${dir}/${path.basename(o.deb)}`] : []),
    ...(o.installCommand !== undefined ? ['--install-command', o.installCommand] : []),
    ...(o.replaceCerts ? ['--replace-certs'] : []),
  ];
  const install = await run(
    remote(asRoot(`sh ${shq(`${dir}/install.sh`)} ${args.map(shq).join(' ')}`)),
  );
  const names = [...files, ...(o.deb !== undefined ? [path.basename(o.deb)] : [])];
  const cleanup = await run(
    remote(`rm -f ${names.map((n) => shq(`${dir}/${n}`)).join(' ')} && rmdir ${shq(dir)}`),
  );
  if (install.code !== 0) {
    throw new AgentError(
      'AGENT_E_CLUSTER_SSH',
      `placing the files on ${o.host} failed (exit ${install.code}${install.code === SSH_FAILED ? ': ssh itself' : ''}): ${lastLines(install)}`,
    );
  }
  for (const l of install.stdout.split('\n'))
    if (l.trim() && !l.startsWith('changed:')) d.progress(`${o.host}: ${l.trim()}`);
  if (cleanup.code !== 0)
    d.progress(
      `note: could not remove ${o.host}:${dir}: ${lastLines(cleanup)}; remove it (it holds key.pem)`,
    );
  const changed = parseChanged(install.stdout);
  if (changed === undefined) {
    throw new AgentError(
      'AGENT_E_CLUSTER_SSH',
      `install.sh on ${o.host} did not report what it changed: ${lastLines(install)}`,
    );
  }

  // 3. Start (a running agent stays as it is) or restart (its files changed).
  const action = changed.length > 0 ? 'restart' : 'start';
  const start = await run(remote(asRoot(o.startCommand.replaceAll('{action}', action))));
  if (start.code !== 0) {
    throw new AgentError(
      'AGENT_E_CLUSTER_SSH',
      `${o.startCommand.replaceAll('{action}', action)} on ${o.host} failed (exit ${start.code}): ${lastLines(start)}`,
    );
  }
  d.progress(`${action === 'restart' ? 'restarted' : 'started'} the agent on ${o.host}`);

  // 4. Wait for ready.
  const t0 = d.clock.now();
  let last: ExecResult | undefined;
  for (;;) {
    last = await run(remote(asRoot(o.statusCommand)), 60_000);
    if (last.code === 0) {
      return { copyAttempts: attempt, changed, action, status: last.stdout };
    }
    const waited = d.clock.now() - t0;
    if (waited >= o.readyTimeoutMs) break;
    const first = (last.stdout.trim() || last.stderr.trim()).split('\n')[0] ?? '';
    d.progress(`${o.host}: not ready yet (${formatDuration(waited)}): ${first}`);
    await d.clock.sleep(Math.min(o.pollMs, o.readyTimeoutMs - waited));
  }
  throw new AgentError(
    'AGENT_E_CLUSTER_VM_NOT_READY',
    `the agent on ${o.host} is not ready after ${formatDuration(o.readyTimeoutMs)}; its status: ${(last.stdout + last.stderr).trim().replace(/\n/g, ' | ')}; see journalctl -u ${UNIT} on the VM`,
  );
}
