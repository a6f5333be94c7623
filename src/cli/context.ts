import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AgentError } from '../lib/errors';

export interface CommandContext {
  /** Arguments after the command name. */
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** A command returns its exit code; it throws AgentError for errors with a code. */
export type CommandRun = (ctx: CommandContext) => Promise<number>;

export interface CommandModule {
  readonly run: CommandRun;
}

/** parseArgs that turns unknown options into a usage error (exit 2). */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: readonly string[],
  options: T,
  usage: string,
): {
  values: ReturnType<
    typeof parseArgs<{ options: T; allowPositionals: true; strict: true }>
  >['values'];
  positionals: string[];
} {
  try {
    const r = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    throw new AgentError('AGENT_E_USAGE', `${(e as Error).message}\n${usage}`);
  }
}

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;
