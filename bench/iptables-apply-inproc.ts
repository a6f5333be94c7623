// Helper of bench/iptables-apply.ts, run inside a fresh network namespace: times the daemon's
// in-process work (no Node start-up): the first apply, a drift check that finds the rules in
// sync, and a clean. Prints one JSON line of milliseconds.
import { loadConfig } from '../src/config/index';
import { exec } from '../src/lib/exec';
import { applyPlan, cleanCapture, diffLive, prepare, readLiveWith } from '../src/netfilter/index';

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

async function main(): Promise<void> {
  const { config } = await loadConfig(process.env);
  const io = { exec, stateDir: config.core.stateDir };
  let t = process.hrtime.bigint();
  const { live, plan } = await prepare(io, config.capture);
  const r = await applyPlan(io, plan, live);
  const apply = ms(t);
  if (!r.changed) throw new Error('first apply changed nothing: the namespace was not fresh');
  t = process.hrtime.bigint();
  const drift = await diffLive(io, plan, await readLiveWith(io, live.backend, 'in use'));
  const check = ms(t);
  if (drift.length > 0) throw new Error(`not in sync after apply: ${JSON.stringify(drift)}`);
  t = process.hrtime.bigint();
  await cleanCapture(io, await readLiveWith(io, live.backend, 'in use'));
  const clean = ms(t);
  process.stdout.write(JSON.stringify({ apply, check, clean }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exitCode = 1;
});
