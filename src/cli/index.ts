import { AgentError, EXIT_USAGE, toAgentError } from '../lib/errors';
import { COMMANDS } from './commands';
import type { CommandContext } from './context';
import { DOC_DIR } from '../version';

export const PROGRAM = 'istio-node-agent';

export function topUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(width)}  ${v.summary}`);
  return [
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Joins this host to an Istio service mesh.',
    '',
    'Commands:',
    ...lines,
    '',
    `Run '${PROGRAM} <command> --help' for a command's options.`,
    'Configuration: /var/lib/istio/envoy/cluster.env and sidecar.env.',
    `Reference: man istio-node-agent; ${DOC_DIR}/{configuration,operations,errors}.md.gz.`,
    'Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error.',
  ].join('\n');
}

/** Runs the CLI and returns the exit code. Never throws. */
export async function main(
  argv: readonly string[],
  ctx: Omit<CommandContext, 'argv'>,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    ctx.out(topUsage() + '\n');
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '--version' || name === '-v') return main(['version'], ctx);
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    ctx.err(`${PROGRAM}: unknown command "${name}"\n\n${topUsage()}\n`);
    return EXIT_USAGE;
  }
  try {
    const mod = await entry.load();
    return await mod.run({ ...ctx, argv: rest });
  } catch (e) {
    const err = toAgentError(e);
    ctx.err(errorText(`${PROGRAM} ${name}`, err));
    return err instanceof AgentError ? err.exitCode : 1;
  }
}

/**
 * What the CLI prints for an error that ends a command: one line per problem, each
 * `<program> <command>: [file:line: VARIABLE: ]message [CODE]`; a usage error's usage text
 * (the lines after its first) below its line.
 */
export function errorText(prefix: string, err: AgentError): string {
  if (err.code === 'AGENT_E_USAGE' && err.problems.length === 1) {
    const [first, ...usage] = err.message.split('\n');
    const line = new AgentError(err.code, first ?? '', err.origin ? { origin: err.origin } : {});
    return `${prefix}: ${line.toLine()}\n${usage.length > 0 ? usage.join('\n') + '\n' : ''}`;
  }
  return err
    .toLines()
    .map((l) => `${prefix}: ${l}\n`)
    .join('');
}
