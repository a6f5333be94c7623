import { AgentError } from '../lib/errors';

/** One assignment read from an env file, with where it stood. */
export interface EnvEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parses shell-style KEY=VALUE text as cluster.env and sidecar.env are written: `#` comments,
 * blank lines, an optional `export `, single quotes (literal), double quotes (with \" \\ \$ \`
 * escapes), unquoted values with trailing ` # comment`, empty values, CRLF line ends and a UTF-8
 * BOM. A later assignment of the same key wins, as when a shell sources the file. Variable
 * expansion is not performed (the 1.0 files never relied on it); a `$` stays literal.
 */
export function parseEnvFile(text: string, file: string): EnvEntry[] {
  const src = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = src.split(/\r?\n/);
  const out: EnvEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let s = lines[i]!.replace(/\r$/, '').trim();
    if (s === '' || s.startsWith('#')) continue;
    if (s.startsWith('export ') || s.startsWith('export\t')) s = s.slice(7).trimStart();
    const eq = s.indexOf('=');
    const fail = (why: string): never => {
      throw new AgentError('AGENT_E_CONFIG_SYNTAX', why, {
        origin: {
          file,
          line: lineNo,
          variable: eq > 0 ? s.slice(0, eq) : (s.split(/\s/)[0] ?? ''),
        },
      });
    };
    if (eq <= 0) fail('expected KEY=VALUE');
    const key = s.slice(0, eq);
    if (!KEY.test(key)) fail(`"${key}" is not a valid variable name`);
    let rest = s.slice(eq + 1);
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
        const m = /^[^\s'"]+/.exec(rest)!;
        value += m[0];
        rest = rest.slice(m[0].length);
      } else {
        const m = /^[^\s'"]+/.exec(rest)!;
        let word = m[0];
        word = word.replace(/\\(.)/g, '$1');
        value += word;
        rest = rest.slice(m[0].length);
      }
    }
    out.push({ key, value, line: lineNo });
  }
  return out;
}
