import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { AgentStatus } from '../agent';
import { loadConfig } from '../config/index';
import { AgentError } from '../lib/errors';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = `Usage: istio-node-agent status [--json]

Shows the running daemon's last reported status (from its state directory).
Exit 0 when the agent is ready, 1 otherwise.`;

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(ctx.argv, { ...HELP_OPTION, json: { type: 'boolean' } }, USAGE);
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const { config } = await loadConfig(ctx.env);
  const file = path.join(config.core.stateDir, 'status.json');
  let st: AgentStatus;
  try {
    st = JSON.parse(await fs.readFile(file, 'utf8')) as AgentStatus;
  } catch (e) {
    throw new AgentError(
      'AGENT_E_IO',
      `no status at ${file}: is the agent running? (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
  if (values.json) {
    ctx.out(JSON.stringify(st, null, 2) + '\n');
  } else {
    ctx.out(`state: ${st.state} (pid ${st.pid}, since ${st.since})\n`);
    for (const [name, c] of Object.entries(st.components)) {
      ctx.out(
        `${c.ready ? 'ok  ' : 'FAIL'} ${name}: ${c.summary}${c.problem ? ` (${c.problem})` : ''}\n`,
      );
    }
  }
  return st.state === 'ready' ? 0 : 1;
}
