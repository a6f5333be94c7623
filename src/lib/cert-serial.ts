import type { X509Certificate } from 'node:crypto';

/**
 * A certificate's serial number as the agent, the dev CA, `check` and `status` print it: plain
 * upper-case hex without separators, as `openssl x509 -serial` prints it (and Node's
 * `X509Certificate.serialNumber` gives it), so a serial from a log line can be grepped in
 * openssl's output and the other way round.
 */
export function certSerial(cert: Pick<X509Certificate, 'serialNumber'>): string {
  return formatSerial(cert.serialNumber);
}

/** Any spelling of a hex serial (`0a:1b`, `0A1B`, `a1b`) in the one form above. */
export function formatSerial(hex: string): string {
  return hex.replace(/:/g, '').toUpperCase();
}
