// src/ca/ip-fast-path.ts replaces node:net's isIP and isIPv6 for the agent's whole process: they
// must give Node's answers for every input, must not run Node's IPv6 pattern for a string
// without a colon (that is what they are for: bench/start-profile.ts), and must be in place
// once the CA client has been made.
import t from 'tap';
import nodeNet from 'node:net';
import { installIpFastPath, mayBeIPv6, type IpChecks } from '../../src/ca/ip-fast-path';

const KNOWN: readonly [string, boolean][] = [
  ['::', true],
  ['::1', true],
  ['fe80::1%eth0', true],
  ['FE80::ABCD:1%2', true],
  ['2001:db8:0:0:0:0:2:1', true],
  ['2001:db8::2:1', true],
  ['::ffff:192.0.2.128', true],
  ['1:2:3:4:5:6:7::', true],
  ['1:2:3:4:5:6:1.2.3.4', true],
  ['127.0.0.1', false],
  ['10.0.0.255', false],
  ['istio-citadel.istio-system', false],
  ['localhost', false],
  ['', false],
  [':', false],
  [':::', false],
  ['1:2:3:4:5:6:7:8:9', false],
  ['2001:db8::g', false],
  ['fe80::1%', false],
  ['[::1]', false],
  ['%eth0', false],
  ['12345::1', false],
  ['256.0.0.1', false],
];

/** Node's own functions, and a fresh copy of node:net's three with the fast path installed. */
function fresh(): { node: IpChecks; fast: IpChecks; asked: string[] } {
  const asked: string[] = [];
  const node: IpChecks = {
    isIP: nodeNet.isIP,
    isIPv4: nodeNet.isIPv4,
    isIPv6: nodeNet.isIPv6,
  };
  const fast: IpChecks = {
    isIP: (s) => {
      asked.push(`isIP ${s}`);
      return node.isIP(s);
    },
    isIPv4: node.isIPv4,
    isIPv6: (s) => {
      asked.push(`isIPv6 ${s}`);
      return node.isIPv6(s);
    },
  };
  if (!installIpFastPath(fast)) throw new Error('not installed');
  return { node, fast, asked };
}

/** Deterministic random strings (a linear congruential generator), many of them addresses. */
function* randomInputs(n: number): Generator<string> {
  let seed = 12345;
  const next = (k: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % k;
  };
  const alphabet = '0123456789abcdefABCDEF::::....%%xz-';
  for (let i = 0; i < n; i++) {
    let s = '';
    if (i % 3 === 0) {
      for (let g = 1 + next(9); g > 0; g--) {
        if (s !== '') s += next(12) === 0 ? '::' : ':';
        for (let c = next(5); c > 0; c--) s += '0123456789abcdef'[next(16)]!;
      }
      if (next(6) === 0) s += '%' + 'eth0'.slice(0, 1 + next(4));
      if (next(8) === 0) s += ':1.2.3.4';
    } else if (i % 3 === 1) {
      s = [next(300), next(300), next(300), next(300)].slice(0, 2 + next(3)).join('.');
    } else {
      for (let c = next(24); c > 0; c--) s += alphabet[next(alphabet.length)]!;
    }
    yield s;
  }
}

void t.test('mayBeIPv6: only a string without a colon is ruled out', async (t) => {
  t.equal(mayBeIPv6('127.0.0.1'), false);
  t.equal(mayBeIPv6('istio-citadel'), false);
  t.equal(mayBeIPv6(''), false);
  t.equal(mayBeIPv6('::1'), true);
  t.equal(mayBeIPv6('a:b'), true);
  t.equal(mayBeIPv6(undefined), true, 'not a string: Node decides');
});

void t.test('the known answers, and Node’s', async (t) => {
  const { node, fast } = fresh();
  for (const [s, v6] of KNOWN) {
    t.equal(fast.isIPv6(s), v6, `isIPv6 ${JSON.stringify(s)}`);
    t.equal(fast.isIPv6(s), node.isIPv6(s), `isIPv6 ${JSON.stringify(s)} as Node answers`);
    t.equal(fast.isIP(s), node.isIP(s), `isIP ${JSON.stringify(s)} as Node answers`);
  }
  t.equal(fast.isIP('127.0.0.1'), 4);
  t.equal(fast.isIP('::1'), 6);
  t.equal(fast.isIP('localhost'), 0);
});

void t.test('120000 random strings: the same answers as Node’s', async (t) => {
  const { node, fast } = fresh();
  let differ = 0;
  let first = '';
  const seen = { 4: 0, 6: 0 };
  for (const s of randomInputs(120_000)) {
    const ip = fast.isIP(s);
    if (ip === 4 || ip === 6) seen[ip]++;
    if (ip !== node.isIP(s) || fast.isIPv6(s) !== node.isIPv6(s)) {
      differ++;
      first ||= s;
    }
  }
  t.equal(differ, 0, `no answer differs from Node’s${first ? ` (first: ${first})` : ''}`);
  t.ok(seen[4] > 1000 && seen[6] > 1000, `the inputs hold addresses (${JSON.stringify(seen)})`);
});

void t.test('what is not a string: Node’s answer', async (t) => {
  const { node, fast } = fresh();
  const odd: unknown[] = [undefined, null, 1, { toString: () => '::1' }, ['::1']];
  for (const v of odd) {
    t.equal(fast.isIPv6(v as string), node.isIPv6(v as string), `isIPv6 ${String(v)}`);
    t.equal(fast.isIP(v as string), node.isIP(v as string), `isIP ${String(v)}`);
  }
  t.equal(
    fast.isIPv6({ toString: () => '::1' } as unknown as string),
    true,
    'converted as Node does',
  );
});

void t.test('a string without a colon never reaches Node’s functions', async (t) => {
  const { fast, asked } = fresh();
  for (const s of ['127.0.0.1', 'istio-citadel', '', 'localhost']) {
    fast.isIPv6(s);
    fast.isIP(s);
  }
  t.same(asked, [], 'not asked');
  fast.isIPv6('::1');
  fast.isIP('::1');
  t.same(asked, ['isIPv6 ::1', 'isIP ::1'], 'a string with a colon is theirs to judge');
});

void t.test('installed once; a frozen module is left as it was', async (t) => {
  const { fast, asked } = fresh();
  const before = fast.isIPv6;
  t.equal(installIpFastPath(fast), true, 'already in place');
  t.equal(fast.isIPv6, before, 'not wrapped twice');
  fast.isIPv6('::1');
  t.same(asked, ['isIPv6 ::1'], 'one call reaches the original');
  const frozen = Object.freeze({ ...nodeNet });
  t.equal(installIpFastPath(frozen), false, 'frozen: not installed');
  t.equal(frozen.isIPv6, nodeNet.isIPv6);
});

void t.test('node:net has it once the first CA client is made', async (t) => {
  const saved = { isIP: nodeNet.isIP, isIPv6: nodeNet.isIPv6 };
  t.teardown(() => {
    Object.assign(nodeNet, saved);
  });
  const { createCaClient, startDevCa } = await import('../../src/ca/index');
  const ca = await startDevCa({ ttlMs: 3_600_000 });
  t.teardown(() => ca.stop());
  t.equal(nodeNet.isIPv6, saved.isIPv6, 'not before');
  const client = createCaClient({
    address: ca.address,
    serverName: 'istio-citadel',
    rootPem: ca.rootPem,
    api: 'CreateCertificate',
    timeoutMs: 5000,
    credential: { kind: 'token', token: 'x', credentialType: 'gcp' },
  });
  client.close();
  t.not(nodeNet.isIPv6, saved.isIPv6, 'isIPv6 replaced');
  t.not(nodeNet.isIP, saved.isIP, 'isIP replaced');
  t.equal(nodeNet.isIP('127.0.0.1'), 4);
  t.equal(nodeNet.isIPv6('fe80::1%eth0'), true);
});
