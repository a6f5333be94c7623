import {
  createPrivateKey,
  createPublicKey,
  generatePrime,
  randomBytes,
  sign,
  verify,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

/**
 * RSA keys made from two primes that OpenSSL draws side by side in the thread pool.
 *
 * Why not `generateKeyPair('rsa')`: for two primes, 2048 bits or more and e = 65537, OpenSSL 3
 * takes its SP 800-56B path (auxiliary primes for every prime), which takes 3-4 times as long
 * here as drawing the two primes at once with OpenSSL's prime generator (`BN_generate_prime_ex`,
 * the one its own classic path and 1.1.1 use). See docs/decisions.md, "Issue 13, fourth pass".
 *
 * The primes are OpenSSL's (its DRBG, sieve and Miller-Rabin rounds); this file checks them
 * against the conditions of FIPS 186-5 A.1.1 that do not need a secret-dependent gcd, assembles
 * the private key, has OpenSSL import it and runs a pairwise sign/verify before anyone uses it.
 * JS BigInt is not constant-time: no loop here runs a number of times that depends on a secret
 * (the two modular inverses, whose Euclidean loops do, see only values blinded by a random
 * factor); the rest is multiplications and divisions of fixed-size numbers.
 */

export const RSA_PUBLIC_EXPONENT = 65537n;

/** Why a prime, or a pair of them, cannot make the key (the caller draws again). */
export type PrimeRejection =
  | 'size' // not in [√2·2^(b-1), 2^b - 1]
  | 'exponent' // p - 1 shares a factor with e
  | 'distance'; // |p - q| ≤ 2^(nlen/2 - 100)

/** The private key's numbers, as PKCS#1 and JWK name them. */
export interface RsaPrivateParts {
  readonly n: bigint;
  readonly e: bigint;
  readonly d: bigint;
  readonly p: bigint;
  readonly q: bigint;
  readonly dp: bigint;
  readonly dq: bigint;
  readonly qi: bigint;
}

/** Whether `p` can be one of the two primes of a key of `modulusBits` bits with exponent `e`. */
export function checkPrime(p: bigint, modulusBits: number, e: bigint): PrimeRejection | undefined {
  const half = BigInt(modulusBits / 2);
  // p ≥ √2·2^(half-1) ⇔ p² ≥ 2^(2·half-1); p < 2^half.
  if (p >> half !== 0n || p * p < 1n << (2n * half - 1n)) return 'size';
  // e is prime, so gcd(p - 1, e) = 1 unless e divides p - 1.
  if ((p - 1n) % e === 0n) return 'exponent';
  return undefined;
}

/** Whether two primes that pass checkPrime are far enough apart (FIPS 186-5 A.1.1, step 5.4). */
export function checkPair(p: bigint, q: bigint, modulusBits: number): PrimeRejection | undefined {
  const gap = p > q ? p - q : q - p;
  return gap > 1n << BigInt(modulusBits / 2 - 100) ? undefined : 'distance';
}

/** a⁻¹ mod m by the extended Euclidean algorithm; only for public or blinded values. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [((a % m) + m) % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const k = r0 / r1;
    [r0, r1] = [r1, r0 - k * r1];
    [s0, s1] = [s1, s0 - k * s1];
  }
  if (r0 !== 1n) throw new RangeError('not invertible');
  return ((s0 % m) + m) % m;
}

/** a⁻¹ mod m (m prime, a not a multiple of it) with the Euclidean loop seeing a·r, not a. */
function blindedInverse(a: bigint, m: bigint, r: bigint): bigint {
  return (modInverse((a * r) % m, m) * r) % m;
}

/**
 * The private key of two checked primes (p > q after the call, as OpenSSL orders them) and a
 * prime e. `below(max)` draws the blinding factors, uniformly in [1, max - 1].
 *
 * d = e⁻¹ mod (p-1)(q-1), as OpenSSL's classic path and Go's crypto/rsa compute it: with
 * φ = (p-1)(q-1), d = (1 + kφ)/e where k = -(φ mod e)⁻¹ mod e, so the only inverse is of a
 * number below e, and everything on φ is a fixed-size multiplication or division.
 */
export function rsaParts(
  p0: bigint,
  q0: bigint,
  e: bigint,
  below: (max: bigint) => bigint,
): RsaPrivateParts {
  const [p, q] = p0 > q0 ? [p0, q0] : [q0, p0];
  const phi = (p - 1n) * (q - 1n);
  const k = (e - blindedInverse(phi % e, e, below(e))) % e;
  const d = (1n + k * phi) / e;
  const qi = blindedInverse(q, p, below(p));
  return { n: p * q, e, d, p, q, dp: d % (p - 1n), dq: d % (q - 1n), qi };
}

function b64u(v: bigint): string {
  const hex = v.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('base64url');
}

/**
 * Whether the parts make one RSA key: n = pq, e·dp ≡ 1 mod p-1, e·dq ≡ 1 mod q-1, q·qi ≡ 1 mod p
 * (fixed-size multiplications and divisions), and d above 2^(nlen/2) (FIPS 186-5 A.1.1: a small
 * d can be found from the public key). The pairwise test alone would not see a wrong CRT part:
 * OpenSSL falls back to d when a CRT result does not verify.
 */
export function consistent(k: RsaPrivateParts): boolean {
  return (
    k.n === k.p * k.q &&
    k.d > 1n << BigInt(Math.floor(k.n.toString(2).length / 2)) &&
    (k.e * k.d) % (k.p - 1n) === 1n &&
    (k.e * k.d) % (k.q - 1n) === 1n &&
    k.dp === k.d % (k.p - 1n) &&
    k.dq === k.d % (k.q - 1n) &&
    (k.q * k.qi) % k.p === 1n
  );
}

/** The parts as a JWK that `createPrivateKey` imports. */
export function rsaJwk(k: RsaPrivateParts): JsonWebKey {
  return {
    kty: 'RSA',
    n: b64u(k.n),
    e: b64u(k.e),
    d: b64u(k.d),
    p: b64u(k.p),
    q: b64u(k.q),
    dp: b64u(k.dp),
    dq: b64u(k.dq),
    qi: b64u(k.qi),
  };
}

/** Where the primes and the blinding factors come from (injected by tests). */
export interface RsaRandom {
  /** A random prime of exactly `bits` bits with its top two bits set. */
  readonly prime: (bits: number) => Promise<bigint>;
  /** A uniformly random number in [1, max - 1]. */
  readonly below: (max: bigint) => bigint;
}

const promisePrime = (bits: number): Promise<bigint> =>
  new Promise((resolve, reject) => {
    generatePrime(bits, { bigint: true }, (err, prime) => {
      if (err) reject(err);
      else resolve(prime);
    });
  });

export const opensslRandom: RsaRandom = {
  prime: promisePrime,
  below: (max) => {
    // 64 bits more than max makes the bias of the reduction below 2⁻⁶⁴.
    const bytes = Math.ceil(max.toString(16).length / 2) + 8;
    return (BigInt(`0x${randomBytes(bytes).toString('hex')}`) % (max - 1n)) + 1n;
  },
};

/** How many draws of one prime may fail a check before the generator is called broken. */
const MAX_DRAWS = 64;

async function checkedPrime(random: RsaRandom, modulusBits: number): Promise<bigint> {
  let last: PrimeRejection | undefined;
  for (let i = 0; i < MAX_DRAWS; i += 1) {
    const p = await random.prime(modulusBits / 2);
    last = checkPrime(p, modulusBits, RSA_PUBLIC_EXPONENT);
    if (!last) return p;
  }
  throw new Error(`RSA key generation: ${MAX_DRAWS} primes in a row failed the ${last} check`);
}

const PAIRWISE = Buffer.from('istio-node-agent pairwise consistency test');

/**
 * A new RSA private key of `modulusBits` bits (even; 2048 and up) and e = 65537. The two primes
 * are drawn at once, in two threads of the pool; a key that fails the pairwise test is an error,
 * never returned.
 */
export async function generateRsaKey(
  modulusBits: number,
  random: RsaRandom = opensslRandom,
): Promise<KeyObject> {
  if (!Number.isInteger(modulusBits) || modulusBits < 2048 || modulusBits % 2 !== 0)
    throw new RangeError(`RSA key generation: ${modulusBits} is not an even size of 2048 or more`);
  const [p, first] = await Promise.all([
    checkedPrime(random, modulusBits),
    checkedPrime(random, modulusBits),
  ]);
  let q = first;
  for (let i = 0; checkPair(p, q, modulusBits); i += 1) {
    if (i >= MAX_DRAWS) throw new Error('RSA key generation: the primes were never far apart');
    q = await checkedPrime(random, modulusBits);
  }
  const parts = rsaParts(p, q, RSA_PUBLIC_EXPONENT, random.below);
  if (!consistent(parts)) throw new Error('RSA key generation: the key parts do not agree');
  const key = createPrivateKey({ key: rsaJwk(parts), format: 'jwk' });
  const sig = sign('sha256', PAIRWISE, key);
  if (!verify('sha256', PAIRWISE, createPublicKey(key), sig))
    throw new Error('RSA key generation: the new key failed its pairwise consistency test');
  return key;
}
