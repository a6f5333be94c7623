import type { AgentStatus } from '../agent';
import { askDaemon, locateStateDir, type DaemonView } from '../daemon/index';
import { systemClock, type Clock } from '../lib/clock';
import { formatApprox, isoTime } from '../lib/duration';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent status [--state-dir DIR] [--json] [--watch]

Shows the daemon of a state directory (default: ISTIO_AGENT_STATE_DIR, from the
environment or the configuration files if they can be read) as it is now: asks
its monitoring endpoint (the address is in DIR/status.json), or reads
DIR/status.json and judges it at this moment when the endpoint does not answer.
A daemon runs when it holds DIR/agent.lock; otherwise the last status is shown
as the last one. Needs only the state directory: a bad configuration file does
not stop it.

  --state-dir DIR  the agent's state directory (dev: <dev state dir>/agent)
  --json           the status as JSON (what GET /debug/status returns)
  --watch          again every second: redrawn in place on a terminal, one block
                   per second (each after a "--- <time>" line) otherwise; Ctrl-C ends

Exit 0 when the agent runs and is ready, 1 when it runs but is not ready
(degraded, starting, a refused reload, an expired certificate, a crash-looping
sidecar), 3 when it is not running (as systemctl status).`;

/** `systemctl status`'s exit code for a unit that is not running. */
export const EXIT_NOT_RUNNING = 3;

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(
    ctx.argv,
    {
      ...HELP_OPTION,
      json: { type: 'boolean' },
      watch: { type: 'boolean' },
      'state-dir': { type: 'string' },
    },
    USAGE,
  );
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const stateDir = values['state-dir'] ?? (await locateStateDir(ctx.env));
  const once = async (): Promise<{ text: string; code: number }> => {
    const now = systemClock.now();
    const view = await askDaemon(stateDir, () => now);
    return {
      text: values.json
        ? JSON.stringify(jsonOf(view), null, 2) + '\n'
        : renderStatus(view, stateDir, now),
      code: exitCode(view),
    };
  };
  if (!values.watch) {
    const r = await once();
    ctx.out(r.text);
    return r.code;
  }
  const stop = new AbortController();
  const onInt = (): void => {
    stop.abort();
  };
  process.once('SIGINT', onInt);
  try {
    return await watch(once, {
      clock: systemClock,
      signal: stop.signal,
      out: ctx.out,
      tty: process.stdout.isTTY,
    });
  } finally {
    process.off('SIGINT', onInt);
  }
}

export function exitCode(view: DaemonView): number {
  if (!view.running) return EXIT_NOT_RUNNING;
  return view.status?.ready ? 0 : 1;
}

/** What `--json` prints: the daemon's status as /debug/status has it; `not running` otherwise. */
export function jsonOf(view: DaemonView): unknown {
  if (view.running && view.status) return view.status;
  if (view.running) return { state: 'starting', ready: false, pid: view.pid, note: view.note };
  return { state: 'not running', ready: false, pid: view.pid, last: view.status };
}

/** The status as text, every time shown against `now`. Pure. */
export function renderStatus(view: DaemonView, stateDir: string, now: number): string {
  const out: string[] = [];
  const st = view.status;
  if (!view.running) {
    out.push(`state: not running (no agent holds ${stateDir}/agent.lock)`);
    if (st) {
      const when =
        view.writtenAt === undefined ? '' : `, written ${at(isoTime(view.writtenAt), now)}`;
      out.push(`last status: ${st.state}, pid ${st.pid}${when}`);
      out.push(...componentLines(st, now));
    } else out.push(`no status in ${stateDir}: the agent has not run with this state directory`);
    return out.join('\n') + '\n';
  }
  if (!st) {
    out.push(`state: starting (pid ${view.pid ?? '?'}; no status yet)`);
    if (view.note) out.push(`note: ${view.note}`);
    return out.join('\n') + '\n';
  }
  const monitoring = st.daemon?.monitoring;
  const where = typeof monitoring === 'string' ? `, http://${monitoring}` : '';
  out.push(
    `state: ${st.state} (pid ${st.pid}, up ${formatApprox(now - Date.parse(st.since))}${where})`,
  );
  if (view.note) out.push(`note: ${view.note}`);
  out.push(...componentLines(st, now));
  return out.join('\n') + '\n';
}

function componentLines(st: AgentStatus, now: number): string[] {
  const out: string[] = [];
  const notReady = st.notReady ?? {};
  for (const [name, c] of Object.entries(st.components)) {
    const ok = c.ready && !(name in notReady);
    const why = !ok && notReady[name] && notReady[name] !== c.problem ? notReady[name] : undefined;
    const extra = [c.problem, why].filter((x): x is string => x !== undefined);
    out.push(
      `${ok ? 'ok  ' : 'FAIL'} ${name}: ${times(c.summary, now)}${extra.length ? ` (${extra.map((e) => times(e, now)).join('; ')})` : ''}`,
    );
  }
  if (st.reload?.refused !== undefined)
    out.push(`FAIL reload: refused ${at(st.reload.at, now)}: ${st.reload.refused}`);
  return out;
}

const ISO = /\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\b/g;

/** Each instant in `text` followed by how far it is from `now`: "… (in 3h2m)", "… (5m ago)". */
export function times(text: string, now: number): string {
  return text.replace(ISO, (iso) => at(iso, now));
}

function at(iso: string, now: number): string {
  const d = Date.parse(iso) - now;
  return `${iso} (${d >= 0 ? `in ${formatApprox(d)}` : `${formatApprox(-d)} ago`})`;
}

/**
 * `--watch`: shows `sample` every second until `signal`; on a terminal redrawn in place, else
 * one block after another. Returns the last exit code.
 */
export async function watch(
  sample: () => Promise<{ text: string; code: number }>,
  o: {
    clock: Clock;
    signal: AbortSignal;
    out: (s: string) => void;
    tty: boolean;
    intervalMs?: number;
  },
): Promise<number> {
  let code = 0;
  while (!o.signal.aborted) {
    const r = await sample();
    code = r.code;
    o.out(o.tty ? `\x1b[H\x1b[2J${r.text}` : `--- ${isoTime(o.clock.now())}\n${r.text}`);
    await o.clock.sleep(o.intervalMs ?? 1000, o.signal).catch(() => undefined);
  }
  return code;
}
