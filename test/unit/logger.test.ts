import t from 'tap';
import { createLogger, prettyLine, wantsColor } from '../../src/observe/logger';

function capture(journal: boolean, level: 'debug' | 'info' = 'debug') {
  const lines: string[] = [];
  const log = createLogger({ journal, level, write: (s) => lines.push(s) });
  return { log, lines };
}

t.test('journal mode: one record per line, prefixed with the syslog priority', async (t) => {
  const { log, lines } = capture(true);
  const c = log.child({ component: 'certs' });
  c.debug('d');
  c.info({ serial: 'ab' }, 'CSR is approved successfully. Will renew cert in 1h0m0s');
  c.warn('w');
  c.error('e');
  c.fatal('f');
  t.same(
    lines.map((l) => l.slice(0, 3)),
    ['<7>', '<6>', '<4>', '<3>', '<2>'],
  );
  const rec = JSON.parse(lines[1]!.slice(3)) as Record<string, unknown>;
  t.same(rec, {
    level: 'info',
    component: 'certs',
    serial: 'ab',
    msg: 'CSR is approved successfully. Will renew cert in 1h0m0s',
  });
  t.ok(
    lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1),
    'exactly one line each',
  );
});

t.test('terminal mode: plain JSON with a time', async (t) => {
  const { log, lines } = capture(false);
  log.info({ component: 'agent' }, 'hello');
  const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.equal(rec.msg, 'hello');
  t.equal(rec.component, 'agent');
  t.type(rec.time, 'string');
});

t.test('level filtering', async (t) => {
  const { log, lines } = capture(true, 'info');
  log.debug('hidden');
  log.info('shown');
  t.equal(lines.length, 1);
});

t.test('secrets are redacted if they ever reach a logger', async (t) => {
  const { log, lines } = capture(false);
  log.info(
    {
      token: 'eyJhbGciOi.secret',
      key: '-----BEGIN PRIVATE KEY-----',
      req: { authorization: 'Bearer x' },
    },
    'x',
  );
  const text = lines.join('');
  t.notMatch(text, /eyJhbGciOi|BEGIN PRIVATE KEY|Bearer x/);
  t.match(text, /\[redacted\]/);
});

t.test('pretty lines: readable, the level coloured only on a colour terminal', async (t) => {
  const rec = JSON.stringify({
    level: 'warn',
    time: '2026-11-30T08:50:51.123Z',
    component: 'certs',
    msg: 'CA unavailable',
    code: 'AGENT_E_CA_UNAVAILABLE',
  });
  t.equal(
    prettyLine(rec),
    '08:50:51.123 WARN  [certs] CA unavailable  code=AGENT_E_CA_UNAVAILABLE\n',
  );
  t.equal(
    prettyLine(rec, true),
    '08:50:51.123 \x1b[33mWARN \x1b[0m [certs] CA unavailable  code=AGENT_E_CA_UNAVAILABLE\n',
  );
  const lines: string[] = [];
  const log = createLogger({
    journal: false,
    pretty: true,
    color: true,
    write: (s) => lines.push(s),
  });
  log.error({ component: 'dns' }, 'boom');
  t.ok(lines[0]!.includes('\x1b[31mERROR\x1b[0m [dns] boom'), 'error in red');
  t.equal(wantsColor({ isTTY: true }, {}), true);
  t.equal(wantsColor({ isTTY: true }, { NO_COLOR: '1' }), false, 'NO_COLOR');
  t.equal(wantsColor({ isTTY: true }, { TERM: 'dumb' }), false, 'a dumb terminal');
  t.equal(wantsColor({ isTTY: false }, {}), false, 'not a terminal (the journal, a pipe)');
});
