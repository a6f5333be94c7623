// `check`'s exit code and text, from its findings (the findings themselves: the integration
// tests check.test.ts and not-root.test.ts).
import t from 'tap';
import { text } from '../../src/cli/check';
import { checkExitCode, type CheckItem } from '../../src/selfcheck';

const ok: CheckItem = { name: 'config', status: 'ok', detail: '/c.env (3 variables)' };
const skip: CheckItem = {
  name: 'capture',
  status: 'skip',
  code: 'AGENT_E_NOT_ROOT',
  detail: 'not checked without root: …',
};
const drift: CheckItem = {
  name: 'capture',
  status: 'fail',
  code: 'AGENT_E_CAPTURE_DRIFT',
  detail: 'the live rules differ',
};
const user: CheckItem = {
  name: 'capture',
  status: 'fail',
  code: 'AGENT_E_USER_UNKNOWN',
  detail: 'user "x" does not exist',
  notes: ['a warning'],
};

t.test('exit code: 0 none failed, 78 a configuration error among them, else 1', async (t) => {
  const cases: [string, CheckItem[], number][] = [
    ['all ok', [ok], 0],
    ['a skip is no failure', [ok, skip], 0],
    ['a runtime failure', [ok, drift], 1],
    ['a configuration failure wins', [drift, user], 78],
  ];
  for (const [name, items, want] of cases) t.equal(checkExitCode(items), want, name);
});

t.test('text: a line per finding, the code of a failure, notes below, the root hint', async (t) => {
  t.equal(
    text([ok, user, skip], false),
    [
      'ok   config   /c.env (3 variables)',
      'FAIL capture  user "x" does not exist [AGENT_E_USER_UNKNOWN]',
      '              note: a warning',
      'skip capture  not checked without root: …',
      'Run it as root to check what was skipped.',
      '',
    ].join('\n'),
  );
  t.notMatch(text([ok, skip], true), /Run it as root/, 'no hint as root');
});
