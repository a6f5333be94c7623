import type { X509Certificate } from 'node:crypto';

/**
 * The one rule set for a certificate chain, wherever one is checked: what the CA returns
 * (validate.ts), the set on disk (`check`), a bootstrap set (the dev CA). A chain is leaf first;
 * each certificate must be issued (names) and signed (signature) by the next one, and the last
 * must be a trust anchor itself or be issued and signed by one. Validity periods are the
 * caller's: when a set is checked decides what "now" is.
 */
export type ChainVerdict =
  | {
      readonly ok: true;
      /** The last certificate of the chain is itself one of the anchors. */
      readonly topIsAnchor: boolean;
      /** The anchor that issued the last certificate, when that is not an anchor itself. */
      readonly anchor: X509Certificate | undefined;
    }
  | {
      readonly ok: false;
      /** Certificate `brokenAt` is not issued and signed by certificate `brokenAt + 1`. */
      readonly brokenAt: number;
    }
  | {
      readonly ok: false;
      /** The chain is whole but its top is neither an anchor nor issued by one. */
      readonly untrusted: true;
    };

/** Whether `cert` names `issuer` as its issuer and carries a valid signature by its key. */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/** Checks `chain` (leaf first, at least one certificate) against the trust anchors `roots`. */
export function verifyChain(
  chain: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): ChainVerdict {
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!issuedBy(chain[i]!, chain[i + 1]!)) return { ok: false, brokenAt: i };
  }
  const top = chain[chain.length - 1]!;
  if (roots.some((r) => r.fingerprint256 === top.fingerprint256))
    return { ok: true, topIsAnchor: true, anchor: undefined };
  const anchor = roots.find((r) => issuedBy(top, r));
  if (anchor) return { ok: true, topIsAnchor: false, anchor };
  return { ok: false, untrusted: true };
}
