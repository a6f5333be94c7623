import { spawn } from 'node:child_process';
import type { Logger } from '../observe/logger';

/**
 * sd_notify(3) for Node. Node cannot send to an AF_UNIX datagram socket, so the default transport
 * runs `systemd-notify VAR=VALUE…` (systemd ≥ 246 waits for the manager with a barrier, so the
 * message is attributed to our unit; the unit needs NotifyAccess=all). The transport is injected
 * so tests can record messages.
 */
export type NotifyTransport = (fields: readonly string[]) => Promise<void>;

export interface Notifier {
  readonly enabled: boolean;
  ready(status?: string): Promise<void>;
  status(text: string): Promise<void>;
  watchdog(): Promise<void>;
  stopping(): Promise<void>;
  reloading(monotonicUsec: bigint): Promise<void>;
  /** The watchdog interval from WATCHDOG_USEC (when meant for us), in ms; undefined if none. */
  readonly watchdogMs: number | undefined;
}

export function spawnTransport(binary = 'systemd-notify'): NotifyTransport {
  return (fields) =>
    new Promise((resolve, reject) => {
      const child = spawn(binary, [...fields], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new Error(`systemd-notify exited ${code}: ${err.trim()}`));
      });
    });
}

/** Keeps STATUS= to one printable line that systemctl shows in full. */
export function statusLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 400);
}

export function createNotifier(
  env: NodeJS.ProcessEnv,
  log: Logger,
  transport: NotifyTransport = spawnTransport(),
): Notifier {
  const enabled = Boolean(env.NOTIFY_SOCKET);
  let watchdogMs: number | undefined;
  const usec = Number(env.WATCHDOG_USEC);
  const forPid = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
  if (enabled && Number.isFinite(usec) && usec > 0 && forPid) watchdogMs = Math.floor(usec / 1000);
  const send = async (fields: string[]): Promise<void> => {
    if (!enabled) return;
    try {
      await transport(fields);
    } catch (e) {
      log.warn({ code: 'AGENT_E_NOTIFY', err: (e as Error).message }, 'could not notify systemd');
    }
  };
  return {
    enabled,
    watchdogMs,
    ready: (status) =>
      send(status === undefined ? ['READY=1'] : ['READY=1', `STATUS=${statusLine(status)}`]),
    status: (text) => send([`STATUS=${statusLine(text)}`]),
    watchdog: () => send(['WATCHDOG=1']),
    stopping: () => send(['STOPPING=1']),
    reloading: (mono) => send(['RELOADING=1', `MONOTONIC_USEC=${mono}`]),
  };
}
