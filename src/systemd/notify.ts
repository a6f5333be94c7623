import { spawn } from 'node:child_process';
import type { Logger } from '../observe/index';

/**
 * sd_notify(3) for Node. Node cannot send to an AF_UNIX datagram socket, so the default transport
 * runs `systemd-notify VAR=VALUE…`. systemd ≥ 246 makes it wait on a barrier until the manager
 * has read the message, so the sender is still alive (and in our cgroup) when systemd attributes
 * it to the unit; the sender is a child, hence the unit's NotifyAccess=all. The transport is
 * injected so tests can record messages.
 *
 * Messages are sent one at a time, in call order: RELOADING=1 must reach systemd before the
 * READY=1 that ends the reload, and READY=1 before a later STATUS=. A STATUS= alone that is
 * still waiting its turn when a later message brings a STATUS= of its own is not sent (see
 * superseded): systemd shows only the last one, and each message costs a process.
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

/** How long one `systemd-notify` may take; its own barrier waits at most 5 s. */
export const NOTIFY_TIMEOUT_MS = 10_000;

export function spawnTransport(
  binary = 'systemd-notify',
  timeoutMs = NOTIFY_TIMEOUT_MS,
): NotifyTransport {
  return (fields) =>
    new Promise((resolve, reject) => {
      const child = spawn(binary, [...fields], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        err += `(killed after ${timeoutMs} ms)`;
      }, timeoutMs);
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`systemd-notify exited ${code ?? 'on a signal'}: ${err.trim()}`));
      });
    });
}

/** Keeps STATUS= to one printable line that systemctl shows in full. */
export function statusLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 400);
}

/** WATCHDOG_USEC in ms when it is meant for this process (WATCHDOG_PID unset or ours). */
export function watchdogInterval(env: NodeJS.ProcessEnv, pid = process.pid): number | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid)
    return undefined;
  return Math.max(1, Math.floor(usec / 1000));
}

/**
 * Which of the messages waiting their turn (`pending`, none sent yet) need not be sent once
 * `next` is queued behind them: those that carry nothing but STATUS=, when `next` carries a
 * STATUS= too. systemd keeps only the last status, so what it shows ends the same; READY=1,
 * RELOADING=1, WATCHDOG=1 and STOPPING=1 are events and always go, in order. During a start
 * every component's progress is a STATUS=; without this, READY=1 waited behind each of them.
 */
export function superseded(
  pending: readonly (readonly string[])[],
  next: readonly string[],
): number[] {
  if (!next.some((f) => f.startsWith('STATUS='))) return [];
  return pending.flatMap((fields, i) =>
    fields.length > 0 && fields.every((f) => f.startsWith('STATUS=')) ? [i] : [],
  );
}

export function createNotifier(
  env: NodeJS.ProcessEnv,
  log: Logger,
  transport: NotifyTransport = spawnTransport(),
): Notifier {
  const enabled = Boolean(env.NOTIFY_SOCKET);
  const watchdogMs = watchdogInterval(env);
  /** Messages not sent yet, in order; `done` resolves the callers' promises once it is sent. */
  let pending: { fields: string[]; done: (() => void)[] }[] = [];
  let sending = false;
  const pump = async (): Promise<void> => {
    sending = true;
    for (let m = pending.shift(); m; m = pending.shift()) {
      try {
        await transport(m.fields);
        log.trace({ component: 'systemd', notify: m.fields }, 'notified systemd');
      } catch (e) {
        log.warn(
          { component: 'systemd', code: 'AGENT_E_NOTIFY', err: (e as Error).message },
          'could not notify systemd',
        );
      }
      for (const d of m.done) d();
    }
    sending = false;
  };
  const send = (fields: string[]): Promise<void> => {
    if (!enabled) return Promise.resolve();
    return new Promise((resolve) => {
      const drop = new Set(
        superseded(
          pending.map((m) => m.fields),
          fields,
        ),
      );
      // A caller whose STATUS= is not sent waits for the one that replaced it.
      const done = [...pending.filter((_, i) => drop.has(i)).flatMap((m) => m.done), resolve];
      pending = pending.filter((_, i) => !drop.has(i));
      pending.push({ fields, done });
      if (!sending) void pump();
    });
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
