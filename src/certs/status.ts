import type { ComponentStatus } from '../component';
import { isoTime as iso } from '../lib/duration';
import type { AgentError } from '../lib/errors';
import type { HeldCert } from './inspect';

/** What the certificate component's status is made of. */
export interface CertState {
  readonly now: number;
  readonly identity: string;
  readonly current: HeldCert | undefined;
  readonly nextRenewal: number | undefined;
  readonly rotations: number;
  readonly failures: number;
  readonly lastError: AgentError | undefined;
  readonly failingSince: number | undefined;
  readonly renewing: boolean;
}

/**
 * The component's status: ready while a certificate it obtained itself is valid; the summary
 * for STATUS=, a problem while renewal fails, and the details for `status --json`.
 */
export function certStatus(s: CertState): ComponentStatus {
  const { now, current: cur } = s;
  const valid = cur !== undefined && cur.issuer === 'agent' && cur.notAfter > now;
  // Instants, not "in 27s": a status is read later than it is made (STATUS=, status.json), and
  // `status` shows each instant against the time it is read.
  let summary = 'cert: none';
  if (cur) {
    summary =
      cur.notAfter > now
        ? `cert valid until ${iso(cur.notAfter)}`
        : `cert EXPIRED at ${iso(cur.notAfter)}`;
    if (s.nextRenewal !== undefined)
      summary += `, ${s.lastError ? 'next try' : 'renewal'} at ${iso(Math.max(now, s.nextRenewal))}`;
  }
  const problem = s.lastError
    ? `renewal failing since ${iso(s.failingSince ?? now)}: [${s.lastError.code}] ${s.lastError.message}`
    : undefined;
  return {
    ready: valid,
    summary,
    ...(problem ? { problem } : {}),
    ...(valid ? { validUntil: iso(cur.notAfter) } : {}),
    details: {
      identity: s.identity,
      notBefore: cur ? iso(cur.notBefore) : undefined,
      notAfter: cur ? iso(cur.notAfter) : undefined,
      serial: cur?.serial,
      generation: cur?.generation,
      nextRenewal: s.nextRenewal !== undefined ? iso(s.nextRenewal) : undefined,
      rotations: s.rotations,
      failures: s.failures,
      renewing: s.renewing,
    },
  };
}
