import { AgentError, combineErrors } from '../lib/errors';

/** One assignment read from an env file, with where it stood. */
export interface EnvEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What scanEnvFile found: the good assignments, and a problem for each bad line, in order. */
export interface ScannedEnvFile {
  readonly entries: EnvEntry[];
  readonly problems: AgentError[];
}

/** The line's problem, thrown inside the scan and collected per line. */
class LineProblem extends Error {
  constructor(readonly error: AgentError) {
    super(error.message);
  }
}

/**
 * Parses the file as parseEnvFile does, but goes on past a bad line: every bad line gets its
 * AGENT_E_CONFIG_SYNTAX problem (in line order), every good one its entry. An unterminated quote
 * is reported at its line and the scan goes on with the next line.
 */
export function scanEnvFile(text: string, file: string): ScannedEnvFile {
  const src = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = src.split(/\r?\n/);
  const entries: EnvEntry[] = [];
  const problems: AgentError[] = [];
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    try {
      const e = parseLine(lines, i, file);
      if (e === undefined) continue;
      entries.push(e.entry);
      i = e.last;
    } catch (err) {
      if (!(err instanceof LineProblem)) throw err;
      problems.push(err.error);
      i = start;
    }
  }
  return { entries, problems };
}

/**
 * Parses shell-style KEY=VALUE text as cluster.env and sidecar.env are written: `#` comments,
 * blank lines, an optional `export `, single quotes (literal), double quotes (with \" \\ \$ \`
 * escapes), unquoted values with trailing ` # comment`, empty values, CRLF line ends and a UTF-8
 * BOM. A later assignment of the same key wins, as when a shell sources the file. Variable
 * expansion is not performed (the 1.0 files never relied on it); a `$` stays literal.
 */
export function parseEnvFile(text: string, file: string): EnvEntry[] {
  const { entries, problems } = scanEnvFile(text, file);
  const err = combineErrors(problems);
  if (err) throw err;
  return entries;
}

/**
 * The assignment starting at `lines[at]` (undefined for a blank or comment line) and the index
 * of its last line (a quoted value may span lines). Throws a LineProblem for a bad line.
 */
function parseLine(
  lines: readonly string[],
  at: number,
  file: string,
): { entry: EnvEntry; last: number } | undefined {
  let i = at;
  const lineNo = at + 1;
  let s = lines[i]!.replace(/\r$/, '').trim();
  if (s === '' || s.startsWith('#')) return undefined;
  if (s.startsWith('export ') || s.startsWith('export\t')) s = s.slice(7).trimStart();
  const eq = s.indexOf('=');
  const fail = (why: string): never => {
    throw new LineProblem(
      new AgentError('AGENT_E_CONFIG_SYNTAX', why, {
        origin: {
          file,
          line: lineNo,
          variable: eq > 0 ? s.slice(0, eq).trim() : (s.split(/\s/)[0] ?? ''),
        },
      }),
    );
  };
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  const ctl = /[\x00-\x08\x0b-\x1f\x7f]/.exec(lines[i]!.replace(/\r$/, ''));
  if (ctl) {
    fail(
      ctl[0] === '\r'
        ? 'a carriage return inside the line (old Mac line ends?); save the file with Unix line ends'
        : `a control character ${charName(ctl[0])} in the line; remove it`,
    );
  }
  if (eq <= 0) {
    const word = /^[A-Za-z_][A-Za-z0-9_]*$/.test(s.split(/\s/)[0] ?? '');
    fail(
      word && /\s/.test(s)
        ? 'expected KEY=VALUE; a value with spaces needs quotes and no spaces around =, e.g. KEY="a b"'
        : 'expected KEY=VALUE',
    );
  }
  const key = s.slice(0, eq);
  if (/\s$/.test(key) && KEY.test(key.trim()))
    fail(`no spaces around = (write ${key.trim()}=${s.slice(eq + 1).trim()})`);
  if (!KEY.test(key)) fail(`"${key}" is not a valid variable name`);
  let rest = s.slice(eq + 1);
  if (/^\s+\S/.test(rest) && !/^\s+#/.test(rest))
    fail(`no spaces around = (write ${key}=${rest.trim()})`);
  let value = '';
  // A value may be made of several quoted and unquoted parts, as in a shell: A="x"'y'z
  while (rest.length > 0) {
    const c = rest[0]!;
    if (c === "'") {
      let end = rest.indexOf("'", 1);
      // A single-quoted value may continue on following lines.
      while (end < 0 && i + 1 < lines.length) {
        rest += '\n' + lines[++i]!.replace(/\r$/, '');
        end = rest.indexOf("'", 1);
      }
      if (end < 0) fail('unterminated single quote');
      value += rest.slice(1, end);
      rest = rest.slice(end + 1);
    } else if (c === '"') {
      let j = 1;
      let part = '';
      for (;;) {
        if (j >= rest.length) {
          if (i + 1 < lines.length) {
            rest += '\n' + lines[++i]!.replace(/\r$/, '');
            continue;
          }
          fail('unterminated double quote');
        }
        const d = rest[j]!;
        if (d === '"') break;
        if (d === '\\' && j + 1 < rest.length && '"\\$`'.includes(rest[j + 1]!)) {
          part += rest[j + 1]!;
          j += 2;
          continue;
        }
        part += d;
        j++;
      }
      value += part;
      rest = rest.slice(j + 1);
    } else if (c === ' ' || c === '\t') {
      // Unquoted whitespace ends the value; only a comment may follow.
      const tail = rest.trim();
      if (tail !== '' && !tail.startsWith('#'))
        fail('unquoted whitespace in value (quote the value)');
      rest = '';
    } else if (c === '#' && value === '' && rest === s.slice(eq + 1)) {
      // KEY=#x is a literal '#x' in a shell; keep it.
      const m = /^[^\s'"]+/.exec(rest) ?? fail('unexpected character after #');
      value += m[0];
      rest = rest.slice(m[0].length);
    } else {
      const m =
        /^[^\s'"]+/.exec(rest) ??
        fail(`unexpected ${charName(c)} in the value; use a plain space, or quote the value`);
      let word = m[0];
      word = word.replace(/\\(.)/g, '$1');
      value += word;
      rest = rest.slice(m[0].length);
    }
  }
  return { entry: { key, value, line: lineNo }, last: i };
}

/** "U+00A0 (a non-breaking space)" for a message. */
function charName(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  const u = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  const names: Record<number, string> = {
    0x0b: 'a vertical tab',
    0x0c: 'a form feed',
    0x0d: 'a carriage return',
    0xa0: 'a non-breaking space',
    0x2007: 'a figure space',
    0x202f: 'a narrow non-breaking space',
    0x200b: 'a zero-width space',
    0x3000: 'an ideographic space',
    0xfeff: 'a byte-order mark',
  };
  return names[code] ? `${u} (${names[code]})` : u;
}
