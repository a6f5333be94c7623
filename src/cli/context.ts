import { parseArgs, type ParseArgsConfig } from 'node:util';
import { nearestName } from '../config/index';
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

/** A usage error: the message, then the command's usage (main prints the code after the first line). */
export function usageError(message: string, usage: string): AgentError {
  return new AgentError('AGENT_E_USAGE', `${message}\n\n${usage}`);
}

export interface ParseOptionsOptions {
  /** How many arguments that are not options the command takes; default none. */
  readonly positionals?: number;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * The command's options, with the CLI's own usage errors (exit 2, the command's usage after
 * them), not the argument parser's: an unknown option (with the nearest known one), an option
 * without its value, a value given to a flag, an argument the command does not take.
 */
export function parseOptions<T extends Options>(
  argv: readonly string[],
  options: T,
  usage: string,
  opts: ParseOptionsOptions = {},
): {
  values: ReturnType<
    typeof parseArgs<{ options: T; allowPositionals: true; strict: true }>
  >['values'];
  positionals: string[];
} {
  const r = parseArgs({
    args: [...argv],
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const tok of r.tokens) {
    if (tok.kind !== 'option') continue;
    const spec = Object.hasOwn(options, tok.name) ? options[tok.name] : undefined;
    if (spec === undefined) throw usageError(unknownOption(tok.rawName, options), usage);
    const shown = tok.rawName.startsWith('--') ? tok.rawName : `${tok.rawName} (--${tok.name})`;
    if (spec.type === 'string') {
      // parseArgs takes the next argument as the value even when it is an option.
      if (tok.value === undefined || (!tok.inlineValue && tok.value.startsWith('-')))
        throw usageError(`option ${shown} needs a value`, usage);
    } else if (tok.inlineValue) {
      throw usageError(`option ${shown} takes no value`, usage);
    }
  }
  const max = opts.positionals ?? 0;
  if (r.positionals.length > max) {
    const extra = r.positionals[max]!;
    throw usageError(`unexpected argument "${extra}"`, usage);
  }
  return {
    values: r.values,
    positionals: r.positionals,
  };
}

function unknownOption(raw: string, options: Options): string {
  if (!raw.startsWith('--')) return `unknown option ${raw}`;
  const near = nearestName(raw.slice(2), Object.keys(options));
  return `unknown option ${raw}${near === undefined ? '' : `; did you mean --${near}?`}`;
}

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;
