// The CLI's own usage errors (not node:util parseArgs' messages), dev's options validated before
// anything starts, errors printed one problem per line, system errors that are not "a bug".
import t from 'tap';
import { HELP_OPTION, parseOptions } from '../../src/cli/context';
import { parseDevOptions } from '../../src/cli/dev-options';
import { errorText, main } from '../../src/cli/index';
import { AgentError, combineErrors, toAgentError } from '../../src/lib/errors';
import { formatHumanDuration } from '../../src/lib/duration';

const USAGE = 'Usage: x [--json] [--state-dir DIR]';
const OPTS = {
  ...HELP_OPTION,
  json: { type: 'boolean' },
  'state-dir': { type: 'string' },
} as const;

function usageErr(argv: string[], positionals?: number): AgentError {
  try {
    parseOptions(argv, OPTS, USAGE, positionals === undefined ? {} : { positionals });
  } catch (e) {
    if (e instanceof AgentError) return e;
    throw e;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
}

t.test('parseOptions: our usage errors, each with the usage, exit 2', async (t) => {
  const cases: [string, string[], RegExp][] = [
    [
      'unknown option, nearest named',
      ['--jsno'],
      /^unknown option --jsno; did you mean --json\?\n\nUsage: x/,
    ],
    ['unknown option, nothing near', ['--zzzzzzzz'], /^unknown option --zzzzzzzz\n\nUsage: x/],
    ['unknown short option', ['-q'], /^unknown option -q\n/],
    ['missing value at the end', ['--state-dir'], /^option --state-dir needs a value\n\nUsage/],
    [
      'an option taken as the value',
      ['--state-dir', '--json'],
      /^option --state-dir needs a value/,
    ],
    ['a value for a flag', ['--json=yes'], /^option --json takes no value/],
    ['an unexpected argument', ['extra'], /^unexpected argument "extra"\n\nUsage/],
  ];
  for (const [name, argv, want] of cases) {
    const e = usageErr(argv);
    t.equal(e.code, 'AGENT_E_USAGE', name);
    t.equal(e.exitCode, 2, name);
    t.match(e.message, want, name);
    t.notMatch(
      e.message,
      /ERR_PARSE_ARGS|Unknown option '|ERR_/,
      `${name}: not the parser's words`,
    );
  }
  t.same(parseOptions(['a', '--json'], OPTS, USAGE, { positionals: 1 }).positionals, ['a']);
  t.equal(parseOptions(['--state-dir=/x'], OPTS, USAGE).values['state-dir'], '/x');
});

t.test('main prints a usage error as our line, then the usage', async (t) => {
  let err = '';
  const code = await main(['check', '--bogus'], {
    out: () => undefined,
    err: (s: string) => {
      err += s;
    },
    env: {},
  });
  t.equal(code, 2);
  t.match(
    err,
    /^istio-node-agent check: unknown option --bogus \[AGENT_E_USAGE\]\n\nUsage: istio-node-agent check/,
  );
});

t.test('errorText: one line per problem, prefixed once', async (t) => {
  const one = new AgentError('AGENT_E_CONFIG_VALUE', 'bad', {
    origin: { file: '/c.env', line: 3, variable: 'A' },
  });
  const two = new AgentError('AGENT_E_CONFIG_SYNTAX', 'worse', {
    origin: { file: '/c.env', line: 5, variable: 'B' },
  });
  const both = combineErrors([one, two])!;
  t.equal(
    errorText('istio-node-agent run', both),
    'istio-node-agent run: /c.env:3: A: bad [AGENT_E_CONFIG_VALUE]\n' +
      'istio-node-agent run: /c.env:5: B: worse [AGENT_E_CONFIG_SYNTAX]\n',
  );
  t.equal(combineErrors([one]), one);
  t.equal(combineErrors([]), undefined);
});

t.test(
  'dev: every option validated before anything starts, exit 78, one TTL minimum',
  async (t) => {
    const bad = (argv: string[]): AgentError => {
      try {
        parseDevOptions(argv, '/tmp');
      } catch (e) {
        if (e instanceof AgentError) return e;
        throw e;
      }
      throw new Error(`accepted ${argv.join(' ')}`);
    };
    const api = bad(['--api', 'Foo']);
    t.equal(api.code, 'AGENT_E_CONFIG_VALUE');
    t.equal(api.exitCode, 78);
    t.equal(api.origin?.variable, '--api', 'names the option, not the variable');
    t.match(api.message, /"Foo" is not one of HandleCSR, CreateCertificate/);
    t.notMatch(errorText('istio-node-agent dev', api), /dev: dev:/, 'no doubled words');
    t.equal(bad(['--key', 'DSA']).origin?.variable, '--key');
    const ttl = bad(['--ttl', '10s']);
    t.match(ttl.message, /shorter than the minimum 1m0s/, 'the minimum of WORKLOAD_CERT_TTL');
    const all = bad(['--api', 'Foo', '--key', 'DSA', '--ttl', '10s']);
    t.equal(all.problems.length, 3, 'every bad option at once');
    t.equal(bad(['--tll', '1h']).exitCode, 2, 'an unknown option is a usage error');
    const ok = parseDevOptions(
      ['--ttl', '2m', '--api', 'CreateCertificate', '--key', 'ECDSA'],
      '/w',
    );
    t.equal(ok.ttlMs, 120_000);
    t.equal(ok.api, 'CreateCertificate');
    t.equal(ok.keyAlgorithm, 'ECDSA');
    t.equal(ok.stateDir, '/w/.dev-state');
    t.equal(parseDevOptions([], '/w').ttlMs, 60_000, 'the default is the minimum');
  },
);

t.test('a system error is AGENT_E_IO with what to do, never AGENT_E_INTERNAL', async (t) => {
  const eacces = Object.assign(new Error("EACCES: permission denied, open '/etc/certs/key.pem'"), {
    code: 'EACCES',
    syscall: 'open',
    path: '/etc/certs/key.pem',
  });
  const e = toAgentError(eacces);
  t.equal(e.code, 'AGENT_E_IO');
  t.match(e.message, /^cannot open \/etc\/certs\/key\.pem: permission denied \(EACCES\); /);
  const full = toAgentError(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }));
  t.equal(full.code, 'AGENT_E_IO');
  t.match(full.message, /free some space/);
  t.equal(
    toAgentError(new TypeError('x is undefined')).code,
    'AGENT_E_INTERNAL',
    'a bug stays one',
  );
  t.equal(toAgentError(eacces, 'AGENT_E_RESOLVER').code, 'AGENT_E_RESOLVER', 'a chosen code stays');
});

t.test('durations as people read them', async (t) => {
  const H = 3_600_000;
  const cases: [number, string][] = [
    [90 * 24 * H - 6000, '90 days'],
    [47 * H, '47 hours'],
    [49 * H, '2 days'],
    [36 * H, '36 hours'],
    [2 * H, '2 hours'],
    [90 * 60_000, '90 minutes'],
    [61_000, '61 seconds'],
    [1000, '1 second'],
    [-3 * 24 * H, '3 days'],
  ];
  for (const [ms, want] of cases) t.equal(formatHumanDuration(ms), want, want);
});
