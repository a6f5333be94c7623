import t from 'tap';
import { parseEnvFile } from '../../src/config/env-file';
import { AgentError } from '../../src/lib/errors';

const kv = (text: string): Record<string, string> =>
  Object.fromEntries(parseEnvFile(text, 'f.env').map((e) => [e.key, e.value]));

t.test('shell-style assignments', async (t) => {
  const cases: [string, string, Record<string, string>][] = [
    ['plain', 'A=1\nB=two', { A: '1', B: 'two' }],
    ['comments and blank lines', '# c\n\nA=1 # trailing\n  # indented\n', { A: '1' }],
    ['export', 'export A=1\nexport\tB="x y"', { A: '1', B: 'x y' }],
    ['double quotes with escapes', 'A="a \\"b\\" \\$c \\\\d"', { A: 'a "b" $c \\d' }],
    ['single quotes are literal', 'A=\'a \\n $b "c"\'', { A: 'a \\n $b "c"' }],
    ['empty values', 'A=\nB=""\nC=\'\'', { A: '', B: '', C: '' }],
    ['CRLF', 'A=1\r\nB=2\r\n', { A: '1', B: '2' }],
    ['BOM', '\uFEFFA=1', { A: '1' }],
    ['later wins', 'A=1\nA=2', { A: '2' }],
    ['mixed quoting', 'A="x"\'y\'z', { A: 'xyz' }],
    ['hash inside a word', 'A=a#b', { A: 'a#b' }],
    ['equals in value', 'A=b=c', { A: 'b=c' }],
    [
      'CIDR list',
      'ISTIO_SERVICE_CIDR=10.0.0.0/8,192.168.0.0/16',
      { ISTIO_SERVICE_CIDR: '10.0.0.0/8,192.168.0.0/16' },
    ],
    ['multi-line double quotes', 'A="x\ny"\nB=1', { A: 'x\ny', B: '1' }],
  ];
  for (const [name, text, want] of cases) t.same(kv(text), want, name);
});

t.test('line numbers point at the assignment', async (t) => {
  const e = parseEnvFile('# header\n\nA=1\nexport B=2\n', 'f.env');
  t.same(
    e.map((x) => [x.key, x.line]),
    [
      ['A', 3],
      ['B', 4],
    ],
  );
});

t.test('syntax errors name file, line and variable', async (t) => {
  const cases: [string, number, string, RegExp][] = [
    ['A=1\nnot an assignment', 2, 'not', /KEY=VALUE/],
    ['A=1\nB="open', 2, 'B', /unterminated double quote/],
    ["C='open", 1, 'C', /unterminated single quote/],
    ['1A=1', 1, '1A', /not a valid variable name/],
    ['A=two words', 1, 'A', /unquoted whitespace/],
  ];
  for (const [text, line, variable, msg] of cases) {
    try {
      parseEnvFile(text, 'x.env');
      t.fail(`${JSON.stringify(text)} should fail`);
    } catch (e) {
      t.ok(e instanceof AgentError);
      const err = e as AgentError;
      t.equal(err.code, 'AGENT_E_CONFIG_SYNTAX');
      t.same(err.origin, { file: 'x.env', line, variable });
      t.match(err.message, msg);
      t.equal(err.exitCode, 78);
    }
  }
});

t.test(
  'stray control and space characters: a syntax error with the line, never a crash',
  async (t) => {
    const cases: [string, string, RegExp][] = [
      ['lone CR', 'A=1\rB=2\n', /carriage return inside the line/],
      ['vertical tab', 'A=\u000b1', /control character U\+000B \(a vertical tab\)/],
      ['NUL', 'A=x\u0000y', /control character U\+0000/],
      ['non-breaking space', 'A=1\u00a0# note', /U\+00A0 \(a non-breaking space\)/],
      ['NBSP inside an unquoted value', 'A=b\u00a0c', /U\+00A0/],
    ];
    for (const [name, text, re] of cases) {
      let err: unknown;
      try {
        parseEnvFile('# first\n' + text, 'f.env');
      } catch (e) {
        err = e;
      }
      t.ok(err instanceof AgentError, `${name}: an AgentError`);
      t.equal((err as AgentError).code, 'AGENT_E_CONFIG_SYNTAX', `${name}: syntax error`);
      t.equal((err as AgentError).origin?.line, 2, `${name}: names line 2`);
      t.match((err as AgentError).message, re, name);
    }
    t.same(kv('A="b\u00a0c"'), { A: 'b\u00a0c' }, 'inside quotes it is part of the value');
  },
);
