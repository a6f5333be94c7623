import { createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';
import type { KeyAlgorithm } from '../config/types';

/** A freshly made key pair: WebCrypto keys to sign the CSR, the PEM to write, the KeyObject to check. */
export interface WorkloadKey {
  readonly algorithm: KeyAlgorithm;
  readonly keys: CryptoKeyPair;
  /** PKCS#1 `RSA PRIVATE KEY` (as Istio 1.0 wrote) or SEC1 `EC PRIVATE KEY`. */
  readonly pem: string;
  readonly object: KeyObject;
}

type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const SIGNING: Record<
  KeyAlgorithm,
  webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams
> = {
  RSA: {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  },
  ECDSA: { name: 'ECDSA', namedCurve: 'P-256' },
};

export function signingAlgorithm(
  alg: KeyAlgorithm,
): webcrypto.RsaHashedImportParams | webcrypto.EcdsaParams {
  return alg === 'RSA'
    ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
    : { name: 'ECDSA', hash: 'SHA-256' };
}

/**
 * Makes a key on this host (it never leaves it). Node's WebCrypto generates in the libuv thread
 * pool, so a caller can start this early and do other work while it runs.
 */
export async function generateWorkloadKey(
  algorithm: KeyAlgorithm,
  rsaBits = 2048,
): Promise<WorkloadKey> {
  const params = algorithm === 'RSA' ? { ...SIGNING.RSA, modulusLength: rsaBits } : SIGNING.ECDSA;
  const keys = await webcrypto.subtle.generateKey(params, true, ['sign', 'verify']);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const object = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const pem = object.export({
    type: algorithm === 'RSA' ? 'pkcs1' : 'sec1',
    format: 'pem',
  }) as string;
  return { algorithm, keys, pem, object };
}
