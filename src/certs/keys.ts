import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import type { KeyAlgorithm } from '../config/types';

/** A freshly made key: the PEM to write and the KeyObject to sign and check with. */
export interface WorkloadKey {
  readonly algorithm: KeyAlgorithm;
  /** PKCS#1 `RSA PRIVATE KEY` (as Istio 1.0 wrote) or SEC1 `EC PRIVATE KEY`. */
  readonly pem: string;
  readonly object: KeyObject;
  readonly publicKey: KeyObject;
}

/**
 * Makes a key on this host (it never leaves it). Node generates it in the libuv thread pool, so
 * a caller can start this early and do other work (module loading, file reads) meanwhile.
 */
export function generateWorkloadKey(algorithm: KeyAlgorithm, rsaBits = 2048): Promise<WorkloadKey> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, priv: KeyObject): void => {
      if (err) {
        reject(err);
        return;
      }
      const pem = priv.export({
        type: algorithm === 'RSA' ? 'pkcs1' : 'sec1',
        format: 'pem',
      }) as string;
      resolve({ algorithm, pem, object: priv, publicKey: createPublicKey(priv) });
    };
    if (algorithm === 'RSA')
      generateKeyPair('rsa', { modulusLength: rsaBits, publicExponent: 65537 }, done);
    else generateKeyPair('ec', { namedCurve: 'P-256' }, done);
  });
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
