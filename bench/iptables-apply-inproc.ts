// Helper of bench/iptables-apply.ts, run inside a fresh network namespace: times the daemon's
// in-process work (no Node start-up): the first apply as the capture component's start does it
// (read and plan as start reads: ip6tables only when a rule of ours can be there; then the
// transaction), the same reading ip6tables as well (as start did before), a drift check that
// finds the rules in sync, and a clean; the whole component
// start (the same work under the state directory's host lock, which costs a flock(1)); and,
// beside them in the same namespace, one `iptables-restore --noflush` of the same rules (the
// kernel's share of an apply) and its clean, in a rotating order over `ROUNDS` rounds. Counts the
// programs each step starts. Prints one JSON line: medians in milliseconds, the programs of the
// apply, `ratio`, the median over rounds of apply / restore, and `startRatio`, of component
// start / restore.
import { EventEmitter } from 'node:events';
import type { AgentEventMap } from '../src/component';
import { loadConfig } from '../src/config/index';
import { systemClock } from '../src/lib/clock';
import { exec as realExec, type Exec } from '../src/lib/exec';
import { silentLogger } from '../src/observe/index';
import {
  applyPlan,
  CaptureComponent,
  cleanCapture,
  diffLive,
  prepare,
  readLiveWith,
  renderFamily,
  restoreCommand,
  RESTORE_ARGS,
} from '../src/netfilter/index';

const ROUNDS = Number(process.env.INPROC_ROUNDS ?? 5);

/** One round's milliseconds per step. */
interface Steps {
  apply: number;
  both: number;
  check: number;
  clean: number;
  start: number;
  restore: number;
}

/** The JSON line printed: medians of each step, the paired ratios, the programs of an apply. */
export interface InprocResult extends Steps {
  ratio: number;
  bothRatio: number;
  startRatio: number;
  programs: string[];
}
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

let programs: string[] = [];
const exec: Exec = (cmd, args, opts) => {
  programs.push(cmd);
  return realExec(cmd, args, opts);
};

async function main(): Promise<void> {
  const { config } = await loadConfig(process.env);
  const io = { exec, stateDir: config.core.stateDir };
  const deps = {
    log: silentLogger(),
    clock: systemClock,
    random: Math.random,
    exec,
    events: new EventEmitter<AgentEventMap>(),
    fatal: (e: unknown) => {
      throw e;
    },
    changed: () => undefined,
  };
  const rows: Steps[] = [];
  let applyPrograms: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const row = { apply: 0, both: 0, check: 0, clean: 0, start: 0, restore: 0 };
    const ours = async (): Promise<void> => {
      programs = [];
      let t = process.hrtime.bigint();
      const { live, plan } = await prepare(io, config.capture, config.capture.backend, {
        skipUnusedIpv6: true,
      });
      const r = await applyPlan(io, plan, live);
      row.apply = ms(t);
      applyPrograms = [...programs];
      if (!r.changed) throw new Error('first apply changed nothing: the namespace was not fresh');
      t = process.hrtime.bigint();
      const drift = await diffLive(io, plan, await readLiveWith(io, live.backend, 'in use'));
      row.check = ms(t);
      if (drift.length > 0) throw new Error(`not in sync after apply: ${JSON.stringify(drift)}`);
      t = process.hrtime.bigint();
      await cleanCapture(io, await readLiveWith(io, live.backend, 'in use'));
      row.clean = ms(t);
    };
    // The same first apply reading ip6tables too, as start did before issue 13 (side by side).
    const both = async (): Promise<void> => {
      const t = process.hrtime.bigint();
      const { live, plan } = await prepare(io, config.capture);
      await applyPlan(io, plan, live);
      row.both = ms(t);
      await cleanCapture(io, await readLiveWith(io, live.backend, 'in use'));
    };
    const component = async (): Promise<void> => {
      const c = new CaptureComponent(config, deps);
      const t = process.hrtime.bigint();
      await c.start();
      row.start = ms(t);
      await c.stop(); // after what start left running (the IPv6 read), then cleans
    };
    const restore = async (): Promise<void> => {
      const { live, plan } = await prepare(io, config.capture);
      const fp = plan.families.find((f) => f.family === 4)!;
      const t = process.hrtime.bigint();
      const r = await realExec(restoreCommand(live.backend, 4), [...RESTORE_ARGS], {
        input: renderFamily(fp),
      });
      row.restore = ms(t);
      if (r.code !== 0) throw new Error(`iptables-restore: ${r.stderr}`);
      await cleanCapture(io, await readLiveWith(io, live.backend, 'in use'));
    };
    const steps = [ours, both, component, restore];
    for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
    rows.push(row);
  }
  const m = (k: keyof Steps): number => median(rows.map((r) => r[k]));
  const result: InprocResult = {
    apply: m('apply'),
    both: m('both'),
    check: m('check'),
    clean: m('clean'),
    start: m('start'),
    restore: m('restore'),
    ratio: median(rows.map((r) => r.apply / r.restore)),
    bothRatio: median(rows.map((r) => r.both / r.restore)),
    startRatio: median(rows.map((r) => r.start / r.restore)),
    programs: applyPrograms,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exitCode = 1;
});
