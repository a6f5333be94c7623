/**
 * A VM's bootstrap certificates from the cluster (Istio 1.0 `setupMeshEx.sh machineCerts`):
 * Citadel keeps `root-cert.pem`, `cert-chain.pem` and `key.pem` for every service account in the
 * Secret `istio.<sa>` of its namespace. Checked here before anything is written: the key matches
 * the chain, the chain verifies to the root, the SAN is the account's SPIFFE identity, and it is
 * still valid.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { extractCertificates as splitCertificates } from '../lib/pem';
import { formatDuration } from '../lib/duration';
import { checkIssued } from '../certs/index';
import { certificateSans } from '../identity/index';
import { AgentError } from '../lib/errors';
import { kubeCall } from './errors';
import type { KubeApi, Secret } from './kube';

export const CERT_FILES = ['root-cert.pem', 'cert-chain.pem', 'key.pem'] as const;
export type CertFile = (typeof CERT_FILES)[number];

/** Istio 1.0's `ISTIO_SECRET_PREFIX`. */
export const DEFAULT_SECRET_PREFIX = 'istio.';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
/** Clock skew allowed between the workstation and Citadel. */
const SKEW_MS = 5 * 60_000;

export interface CertSet {
  readonly rootPem: string;
  /** Absent with `rootOnly` (GCE VMs take their identity from the metadata server). */
  readonly chainPem?: string;
  readonly keyPem?: string;
}

export interface CertSummary {
  readonly secret: string;
  /** The identity the chain was checked for (absent with rootOnly). */
  readonly identity?: string;
  readonly notAfter: number;
  /** Human text: `valid until … (… left)`. */
  readonly validity: string;
  readonly rootSubject: string;
}

export function spiffeIdentity(trustDomain: string, namespace: string, sa: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${sa}`;
}

/** The Secret's three PEM files, decoded; a missing or empty key is an error naming it. */
export function certSetOf(secret: Secret, where: string, rootOnly: boolean): CertSet {
  const data = secret.data ?? {};
  const file = (k: CertFile): string => {
    const v = data[k];
    const text = v === undefined ? '' : Buffer.from(v, 'base64').toString('utf8');
    if (text.trim() === '') {
      throw new AgentError(
        'AGENT_E_CLUSTER_SECRET_INVALID',
        `Secret ${where} has no ${k} (keys: ${Object.keys(data).join(', ') || 'none'}); it is not a Citadel key-and-cert Secret`,
      );
    }
    return text;
  };
  const rootPem = file('root-cert.pem');
  if (rootOnly) return { rootPem };
  return { rootPem, chainPem: file('cert-chain.pem'), keyPem: file('key.pem') };
}

/** Node gives a subject one attribute per line. */
function oneLine(subject: string): string {
  return subject.split('\n').join(', ');
}

function validityText(notAfter: number, now: number): string {
  const left = Math.floor((notAfter - now) / 1000) * 1000;
  return `valid until ${new Date(notAfter).toISOString()} (${formatDuration(left)} left)`;
}

/**
 * The checks, with the certificate code's own chain verification (src/certs/validate.ts). Throws
 * AGENT_E_CLUSTER_SECRET_INVALID naming the Secret and the failed check.
 */
export function checkCertSet(
  set: CertSet,
  where: string,
  identity: string | undefined,
  now: number,
): Omit<CertSummary, 'secret'> {
  const bad = (msg: string, cause?: unknown): AgentError =>
    new AgentError('AGENT_E_CLUSTER_SECRET_INVALID', `Secret ${where}: ${msg}`, { cause });
  const roots = splitCertificates(set.rootPem);
  let root: X509Certificate;
  try {
    if (roots.length === 0) throw new Error('no PEM certificate');
    root = new X509Certificate(roots[0]!);
  } catch (e) {
    throw bad(`root-cert.pem is not a certificate (${(e as Error).message})`, e);
  }
  if (set.chainPem === undefined || set.keyPem === undefined || identity === undefined) {
    const notAfter = Date.parse(root.validTo);
    if (notAfter <= now) throw bad(`root-cert.pem expired at ${new Date(notAfter).toISOString()}`);
    return { notAfter, validity: validityText(notAfter, now), rootSubject: oneLine(root.subject) };
  }
  if (splitCertificates(set.chainPem).length === 0) {
    throw bad('cert-chain.pem holds no PEM certificate');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(set.keyPem);
  } catch (e) {
    throw bad(`key.pem is not a private key (${(e as Error).message})`, e);
  }
  let sans: string[];
  try {
    sans = certificateSans(set.chainPem).map((s) => s.value);
  } catch (e) {
    throw bad(`cert-chain.pem is not a certificate (${(e as Error).message})`, e);
  }
  if (!sans.includes(identity)) {
    throw bad(
      `the certificate is for ${sans.join(', ') || '(no SAN)'}, not ${identity}; is --trust-domain right?`,
    );
  }
  try {
    const r = checkIssued({
      response: [set.chainPem],
      key,
      identity,
      rootPem: set.rootPem,
      now,
      skewMs: SKEW_MS,
      // Citadel chose the bootstrap certificate's lifetime; nothing was asked for.
      ttlMs: undefined,
    });
    return {
      identity,
      notAfter: r.notAfter,
      validity: validityText(r.notAfter, now),
      rootSubject: oneLine(root.subject),
    };
  } catch (e) {
    throw bad((e as Error).message.replace(/^the issued /, 'the '), e);
  }
}

export interface FetchCertsOptions {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly secretPrefix: string;
  readonly trustDomain: string;
  readonly rootOnly: boolean;
  readonly now: number;
}

/** Reads and checks the `istio.<sa>` Secret. */
export async function fetchCerts(
  api: KubeApi,
  o: FetchCertsOptions,
): Promise<{ set: CertSet; summary: CertSummary }> {
  const name = `${o.secretPrefix}${o.serviceAccount}`;
  const where = `${o.namespace}/${name}`;
  const secret = await kubeCall(api.target, () => api.getSecret(o.namespace, name));
  if (!secret) {
    throw new AgentError(
      'AGENT_E_CLUSTER_NOT_FOUND',
      `Secret ${where} not found: Citadel writes ${o.secretPrefix}<service account> for every ServiceAccount ` +
        `(Istio 1.0's secret-based key distribution); check that ServiceAccount "${o.serviceAccount}" exists ` +
        `(kubectl -n ${o.namespace} create serviceaccount ${o.serviceAccount}) and that Citadel runs ` +
        `(kubectl -n istio-system get pods -l istio=citadel)`,
    );
  }
  const set = certSetOf(secret, where, o.rootOnly);
  const identity = o.rootOnly
    ? undefined
    : spiffeIdentity(o.trustDomain, o.namespace, o.serviceAccount);
  const summary = { secret: where, ...checkCertSet(set, where, identity, o.now) };
  return { set, summary };
}
