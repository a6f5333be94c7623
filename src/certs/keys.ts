import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import type { KeyAlgorithm } from '../config/types';
import { generateRsaKey } from './rsa-key';

/** A freshly made key: the PEM to write and the KeyObject to sign and check with. */
export interface WorkloadKey {
  readonly algorithm: KeyAlgorithm;
  /** PKCS#1 `RSA PRIVATE KEY` (as Istio 1.0 wrote) or SEC1 `EC PRIVATE KEY`. */
  readonly pem: string;
  readonly object: KeyObject;
  readonly publicKey: KeyObject;
}

function workloadKey(algorithm: KeyAlgorithm, priv: KeyObject): WorkloadKey {
  const pem = priv.export({ type: algorithm === 'RSA' ? 'pkcs1' : 'sec1', format: 'pem' });
  return { algorithm, pem: pem as string, object: priv, publicKey: createPublicKey(priv) };
}

function ecKey(): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    generateKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, priv) => {
      if (err) reject(err);
      else resolve(priv);
    });
  });
}

/**
 * Makes a key on this host (it never leaves it), in the libuv thread pool, so a caller can start
 * this early and do other work (module loading, file reads) meanwhile. RSA keys are made from
 * two primes drawn side by side (rsa-key.ts), ECDSA keys by OpenSSL's `generateKeyPair`.
 */
export async function generateWorkloadKey(
  algorithm: KeyAlgorithm,
  rsaBits = 2048,
): Promise<WorkloadKey> {
  return workloadKey(
    algorithm,
    algorithm === 'RSA' ? await generateRsaKey(rsaBits) : await ecKey(),
  );
}

/**
 * Starts making a key with `make` (default generateWorkloadKey); a failure is left to whoever
 * awaits the key (it is not an unhandled rejection meanwhile).
 */
export function startKey(
  algorithm: KeyAlgorithm,
  rsaBits: number,
  make: (algorithm: KeyAlgorithm, rsaBits: number) => Promise<WorkloadKey> = generateWorkloadKey,
): Promise<WorkloadKey> {
  const p = make(algorithm, rsaBits);
  p.catch(() => undefined);
  return p;
}
