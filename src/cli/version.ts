import { VERSION } from '../version';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const USAGE = 'Usage: istio-node-agent version [--json]';

export async function run(ctx: CommandContext): Promise<number> {
  const { values } = parseOptions(ctx.argv, { ...HELP_OPTION, json: { type: 'boolean' } }, USAGE);
  if (values.help) {
    ctx.out(USAGE + '\n');
    return 0;
  }
  const info = {
    version: VERSION,
    node: process.versions.node,
    platform: `${process.platform}/${process.arch}`,
  };
  ctx.out(
    values.json
      ? JSON.stringify(info) + '\n'
      : `istio-node-agent ${info.version} (node ${info.node}, ${info.platform})\n`,
  );
  return Promise.resolve(0);
}
