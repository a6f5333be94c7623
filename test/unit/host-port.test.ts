import t from 'tap';
import { parseHostPort, parsePort, splitHostPort } from '../../src/lib/host-port';

const ok = (host: string, port: number, bracketed = false) => ({ ok: true, host, port, bracketed });
const bad = (problem: string, host?: string) => ({
  ok: false,
  problem,
  ...(host !== undefined ? { host } : {}),
});

void t.test('host:port, names and addresses', (t) => {
  t.same(parseHostPort('istio-citadel:8060'), ok('istio-citadel', 8060));
  t.same(parseHostPort('istio-pilot.istio-system:15011'), ok('istio-pilot.istio-system', 15011));
  t.same(parseHostPort('10.0.0.9:1'), ok('10.0.0.9', 1));
  t.same(parseHostPort('10.0.0.9:65535'), ok('10.0.0.9', 65535));
  t.same(parseHostPort('[fd00::1]:15011'), ok('fd00::1', 15011, true), 'IPv6 in brackets');
  t.same(parseHostPort('[::ffff:10.0.0.1]:80'), ok('::ffff:10.0.0.1', 80, true));
  t.end();
});

void t.test('what is not host:port', (t) => {
  t.same(parseHostPort('no-port'), bad('form'));
  t.same(parseHostPort(':8060'), bad('form'), 'no host');
  t.same(parseHostPort('host:'), bad('form'), 'no port');
  t.same(parseHostPort('host:http'), bad('form'));
  t.same(parseHostPort('a b:80'), bad('form'), 'a blank');
  t.same(parseHostPort('a/b:80'), bad('form'));
  t.same(parseHostPort('fd00::1:80'), bad('form'), 'IPv6 without brackets is ambiguous');
  t.same(parseHostPort('[fd00::1]'), bad('form'), 'brackets without a port');
  t.same(parseHostPort('[10.0.0.1]:80'), bad('brackets'), 'only IPv6 goes in brackets');
  t.same(parseHostPort('[istio-pilot]:80'), bad('brackets'));
  t.same(parseHostPort('[]:80'), bad('brackets'));
  t.same(parseHostPort('host:0'), bad('port', 'host'), 'the host comes with a bad port');
  t.same(parseHostPort('host:65536'), bad('port', 'host'));
  t.same(parseHostPort('host:000080'), bad('port', 'host'), 'at most five digits');
  t.same(parseHostPort('[fd00::1]:99999'), bad('port', 'fd00::1'));
  t.end();
});

void t.test('port 0 where it means any free port (a listener)', (t) => {
  t.same(parseHostPort('127.0.0.1:0', { minPort: 0 }), ok('127.0.0.1', 0));
  t.same(parseHostPort('[::1]:0', { minPort: 0 }), ok('::1', 0, true));
  t.same(parseHostPort('127.0.0.1:0'), bad('port', '127.0.0.1'));
  t.end();
});

void t.test('a default port makes the port optional', (t) => {
  const d = { defaultPort: 53 };
  t.same(parseHostPort('10.0.0.10', d), ok('10.0.0.10', 53));
  t.same(parseHostPort('fd00::a', d), ok('fd00::a', 53), 'bare IPv6');
  t.same(parseHostPort('[fd00::a]', d), ok('fd00::a', 53, true));
  t.same(parseHostPort('[fd00::a]:5353', d), ok('fd00::a', 5353, true));
  t.same(parseHostPort('10.0.0.10:5353', d), ok('10.0.0.10', 5353));
  t.same(parseHostPort('fd00::zz', d), bad('form'), 'colons but not IPv6');
  t.same(parseHostPort('a b', d), bad('form'));
  t.same(parseHostPort('10.0.0.10:0', d), bad('port', '10.0.0.10'));
  t.end();
});

void t.test('parsePort', (t) => {
  t.equal(parsePort('53'), 53);
  t.equal(parsePort('65535'), 65535);
  t.equal(parsePort('0'), undefined);
  t.equal(parsePort('0', 0), 0);
  t.equal(parsePort('65536'), undefined);
  t.equal(parsePort('+53'), undefined);
  t.equal(parsePort(''), undefined);
  t.end();
});

void t.test('splitHostPort: an address the configuration validated', (t) => {
  t.same(splitHostPort('istio-citadel:8060'), { host: 'istio-citadel', port: 8060 });
  t.same(splitHostPort('[fd00::1]:15011'), { host: 'fd00::1', port: 15011 });
  t.same(splitHostPort('10.0.0.1:15012'), { host: '10.0.0.1', port: 15012 });
  t.end();
});
