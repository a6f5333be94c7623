import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createPublicKey, generatePrimeSync } from 'node:crypto';
import {
  RSA_PUBLIC_EXPONENT as E,
  checkPair,
  checkPrime,
  consistent,
  generateRsaKey,
  modInverse,
  opensslRandom,
  rsaParts,
  type RsaRandom,
} from '../../src/certs/rsa-key';

const BITS = 2048;
const TOP = 1n << 1024n;
/** ⌈√2·2^1023⌉: the smallest prime size FIPS 186-5 allows for a 2048-bit modulus. */
const MIN = ((): bigint => {
  // Integer square root of 2^2047, rounded up.
  let x = 1n << 1024n;
  for (;;) {
    const y = (x + (1n << 2047n) / x) >> 1n;
    if (y >= x) break;
    x = y;
  }
  return x * x < 1n << 2047n ? x + 1n : x;
})();

function openssl(args: string[], input: string): string {
  return execFileSync('openssl', args, {
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

t.test('checkPrime: FIPS 186-5 A.1.1 size and exponent conditions', async (t) => {
  // p ≡ 2 mod e, so p - 1 is not a multiple of e; the values need not be prime for these checks.
  const okAbove = (v: bigint): bigint => v + ((2n - (v % E) + E) % E);
  t.equal(checkPrime(okAbove(MIN), BITS, E), undefined, 'the smallest size allowed');
  t.equal(checkPrime(okAbove(MIN) - E, BITS, E), 'size', 'just below √2·2^1023');
  t.equal(checkPrime(TOP - 1n - ((TOP - 3n) % E), BITS, E), undefined, 'the largest size');
  t.equal(checkPrime(TOP + 1n, BITS, E), 'size', 'one bit too long');
  t.equal(checkPrime((1n << 1023n) + 1n, BITS, E), 'size', 'top bit only');
  const multiple = MIN + E - (MIN % E) + 1n; // multiple ≡ 1 mod e
  t.equal(checkPrime(multiple, BITS, E), 'exponent', 'e divides p - 1');
  t.equal(checkPrime(multiple + 2n, BITS, E), undefined);
  t.equal(checkPrime(okAbove(3n << 1534n), 3072, E), undefined, 'the size follows the modulus');
  t.equal(checkPrime(okAbove(MIN), 3072, E), 'size');
});

t.test('checkPair: the primes differ in more than their low 924 bits', async (t) => {
  const p = TOP - 1n;
  const limit = 1n << 924n;
  t.equal(checkPair(p, p, BITS), 'distance');
  t.equal(checkPair(p, p - limit, BITS), 'distance', 'a gap of exactly 2^924 is too small');
  t.equal(checkPair(p, p - limit - 1n, BITS), undefined);
  t.equal(checkPair(p - limit - 1n, p, BITS), undefined, 'order does not matter');
});

t.test('modInverse', async (t) => {
  t.equal(modInverse(3n, 7n), 5n);
  t.equal(modInverse(-4n, 7n), 5n, 'a negative value is reduced first');
  t.equal(modInverse(17n, 3120n), 2753n);
  t.throws(() => modInverse(6n, 9n), RangeError);
});

t.test(
  'rsaParts: the textbook key (p 61, q 53, e 17), whatever the blinding factors',
  async (t) => {
    for (const blind of [1n, 2n, 15n, 16n, 59n, 60n]) {
      const drawn: bigint[] = [];
      const k = rsaParts(53n, 61n, 17n, (max) => {
        drawn.push(max);
        return ((blind - 1n) % (max - 1n)) + 1n;
      });
      t.same(drawn, [17n, 61n], 'one factor below e, one below p');
      t.same(
        { n: k.n, d: k.d, p: k.p, q: k.q, dp: k.dp, dq: k.dq, qi: k.qi },
        { n: 3233n, d: 2753n, p: 61n, q: 53n, dp: 53n, dq: 49n, qi: 38n },
        `blind ${blind}`,
      );
      t.ok(consistent(k));
    }
  },
);

t.test('consistent: any wrong part is seen, and a small d', async (t) => {
  const k = rsaParts(61n, 53n, 17n, () => 7n);
  for (const [name, v] of Object.entries(k)) {
    if (name === 'e') continue;
    t.notOk(consistent({ ...k, [name]: (v as bigint) + 2n }), name);
  }
  // e and d swapped: the same key arithmetic, but d = 17 is below 2^6 for this 12-bit n.
  const small = rsaParts(61n, 53n, 2753n, () => 1n);
  t.equal(small.d, 17n);
  t.notOk(consistent(small));
});

t.test('rsaParts on real primes: e·d ≡ 1 mod λ(n), and OpenSSL agrees', async (t) => {
  const [p, q] = [
    generatePrimeSync(1024, { bigint: true }),
    generatePrimeSync(1024, { bigint: true }),
  ];
  const k = rsaParts(p, q, E, opensslRandom.below);
  t.ok(k.p > k.q, 'p is the larger prime, as OpenSSL orders them');
  t.equal((E * k.d) % (k.p - 1n), 1n);
  t.equal((E * k.d) % (k.q - 1n), 1n);
  t.ok(consistent(k));
});

/** Primes from a list, in order; a test fails if the generator asks for more. */
function listed(t: Test, primes: bigint[]): RsaRandom & { calls: number } {
  const r = {
    calls: 0,
    prime(bits: number): Promise<bigint> {
      t.equal(bits, 1024, 'half of the modulus');
      const v = primes[r.calls];
      r.calls += 1;
      if (v === undefined) throw new Error('no more primes');
      return Promise.resolve(v);
    },
    below: opensslRandom.below,
  };
  return r;
}

t.test('generateRsaKey draws again for a prime or a pair that fails a check', async (t) => {
  const good = [1, 2].map(() => generatePrimeSync(1024, { bigint: true }));
  const [a, b] = good as [bigint, bigint];
  const small = generatePrimeSync(1023, { bigint: true });
  // The two primes are drawn at once: the first draw of each is a, the second a's twin (too close) or b.
  const r = listed(t, [small, a, a, b]);
  const key = await generateRsaKey(BITS, r);
  t.equal(r.calls, 4, 'small (size), a, a (distance), b');
  const jwk = key.export({ format: 'jwk' });
  const n = BigInt(`0x${Buffer.from(jwk.n ?? '', 'base64url').toString('hex')}`);
  t.equal(n, a * b);
});

t.test('generateRsaKey gives up on a prime source that never passes', async (t) => {
  const bad = (1n << 1023n) + 1n;
  await t.rejects(
    generateRsaKey(BITS, { prime: () => Promise.resolve(bad), below: opensslRandom.below }),
    /64 primes in a row failed the size check/,
  );
  const p = generatePrimeSync(1024, { bigint: true });
  await t.rejects(
    generateRsaKey(BITS, { prime: () => Promise.resolve(p), below: opensslRandom.below }),
    /never far apart/,
  );
  await t.rejects(generateRsaKey(1024), /not an even size of 2048 or more/);
  await t.rejects(generateRsaKey(2049), /not an even size/);
});

for (const bits of [2048, 4096]) {
  t.test(`generateRsaKey(${bits}): OpenSSL checks the key; PKCS#1 out and back`, async (t) => {
    const key = await generateRsaKey(bits);
    const pem = key.export({ type: 'pkcs1', format: 'pem' }) as string;
    t.match(openssl(['rsa', '-check', '-noout'], pem), /RSA key ok/);
    const text = openssl(['rsa', '-noout', '-text'], pem);
    t.match(text, new RegExp(`Private-Key: \\(${bits} bit, 2 primes\\)`));
    t.match(text, /publicExponent: 65537 \(0x10001\)/);
    const other = await generateRsaKey(bits);
    t.not(
      createPublicKey(other).export({ format: 'jwk' }).n,
      createPublicKey(key).export({ format: 'jwk' }).n,
      'two keys, two moduli',
    );
  });
}

t.test('opensslRandom.below stays in [1, max - 1]', async (t) => {
  const seen = new Set<bigint>();
  for (let i = 0; i < 200; i += 1) seen.add(opensslRandom.below(5n));
  t.same([...seen].sort(), [1n, 2n, 3n, 4n], 'every value, none outside');
});
