import { status } from '@grpc/grpc-js';
import { formatDuration } from '../lib/duration';
import { AgentError } from '../lib/errors';
import { splitPemCertificates } from '../lib/pem';
import type { CaApi } from './types';
import { decodeRetryDelayMs } from './wire';

/**
 * Pure pieces of the CA client: reading the chain the CA sent (PEM: lib/pem.ts), and turning a
 * gRPC failure into an AgentError with a code and a message that says what to do.
 */

/** The PEM certificates of a chain given as a list of strings (each may hold several blocks). */
export function chainFromList(parts: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (const p of parts) {
    const certs = splitPemCertificates(p);
    if (!certs) return undefined;
    out.push(...certs);
  }
  return out.length > 0 ? out : undefined;
}

export interface CallFailure {
  readonly code: status;
  readonly details: string;
  /** The wait the CA asked for before the next try (see retryHintMs). */
  readonly retryAfterMs?: number | undefined;
}

/**
 * The wait a CA asks for with a failed call, in ms, from the two ways gRPC servers say it:
 * the `grpc-retry-pushback-ms` trailer (gRPC's retry design, A6: a non-negative integer) and
 * a `google.rpc.RetryInfo` in the status details (trailer `grpc-status-details-bin`, AIP-194).
 * The larger wins; anything unreadable, zero or negative is no hint (A6's "do not retry" for a
 * negative value is not followed: the agent must get a certificate, it backs off instead).
 */
export function retryHintMs(
  pushback: string | undefined,
  statusDetails: Buffer | undefined,
): number | undefined {
  const fromPushback =
    pushback !== undefined && /^\d{1,15}$/.test(pushback.trim())
      ? Number(pushback.trim())
      : undefined;
  const fromDetails = statusDetails ? decodeRetryDelayMs(statusDetails) : undefined;
  const hints = [fromPushback, fromDetails].filter((h): h is number => h !== undefined && h > 0);
  return hints.length > 0 ? Math.max(...hints) : undefined;
}

export interface CallContext {
  readonly api: CaApi;
  readonly address: string;
  readonly serverName: string;
  readonly credential: 'mtls' | 'token';
}

/**
 * Failures of the TLS handshake as grpc-js reports them (in the UNAVAILABLE details): our check
 * of the CA's certificate (Node's verify errors and hostname check), and alerts from the CA
 * refusing our client certificate.
 */
const TLS_FAILURE =
  /certificate|altnames|self[- ]signed|unable to (?:get|verify)|\bCERT_|ERR_TLS_|ERR_SSL_|SSL routines|alert|handshake|wrong version number|unknown ca|no shared cipher|unsupported protocol/i;

/** Whether an UNAVAILABLE is a TLS handshake failure rather than the CA being unreachable. */
export function isTlsFailure(details: string): boolean {
  return TLS_FAILURE.test(details);
}

/**
 * Shortens grpc-js's "No connection established. Last error: Error [CODE]: X. Resolution note: "
 * to "X", OpenSSL's "…:error:0A000418:SSL routines:fn:tlsv1 alert unknown ca:file:line:SSL alert
 * number 48" to "tlsv1 alert unknown ca (SSL alert number 48)", and deadline details to their
 * first part.
 */
export function cleanDetails(details: string): string {
  let d = details.replace(/\.?\s*Resolution note:.*$/s, '');
  const m = /Last error: (?:[A-Za-z]*Error(?: \[[A-Z0-9_]+\])?: )?(.*)$/s.exec(d);
  if (m) d = m[1]!;
  const ssl =
    /error:[0-9A-Fa-f]+:SSL routines:[^:]*:([^:]+)(?::[^:]*:\d+)?(?::(SSL alert number \d+))?/.exec(
      d,
    );
  if (ssl) d = ssl[2] ? `${ssl[1]!} (${ssl[2]})` : ssl[1]!;
  if (d.startsWith('Deadline exceeded')) d = d.split(',')[0]!;
  return d.replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)$/, '').trim();
}

export function mapCallFailure(f: CallFailure, ctx: CallContext): AgentError {
  const where = `${ctx.api} at ${ctx.address}`;
  const said = cleanDetails(f.details) || status[f.code] || `code ${f.code}`;
  const details = {
    grpcCode: status[f.code] ?? f.code,
    api: ctx.api,
    address: ctx.address,
    ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
  };
  const hint = { retryAfterMs: f.retryAfterMs };
  switch (f.code) {
    case status.UNAVAILABLE:
      if (isTlsFailure(f.details)) {
        return new AgentError(
          'AGENT_E_CA_AUTH',
          `TLS handshake with the CA (${where}, server name ${ctx.serverName}) failed: ${said}; check root-cert.pem (the CA's root), CITADEL_SERVER_NAME${ctx.credential === 'mtls' ? ' and the certificate in CERTS_DIR' : ''}`,
          { details, ...hint },
        );
      }
      return new AgentError(
        'AGENT_E_CA_UNAVAILABLE',
        `the CA (${where}) is unavailable: ${said}; will retry`,
        { details, ...hint },
      );
    case status.DEADLINE_EXCEEDED:
      return new AgentError(
        'AGENT_E_CA_UNAVAILABLE',
        `the CA (${where}) did not answer before the deadline (CA_CALL_TIMEOUT): ${said}; will retry`,
        { details, ...hint },
      );
    case status.RESOURCE_EXHAUSTED:
      if (/^Received message larger than max/.test(f.details)) {
        // grpc-js refused the CA's message before decoding it (grpc.max_receive_message_length).
        return new AgentError(
          'AGENT_E_CA_BAD_RESPONSE',
          `the CA (${where}) sent an answer larger than this agent accepts: ${said}; refused (check the CA's signing chain)`,
          { details, ...hint },
        );
      }
      return new AgentError(
        'AGENT_E_CA_OVERLOADED',
        `the CA (${where}) is overloaded (RESOURCE_EXHAUSTED): ${said}; backing off${f.retryAfterMs !== undefined ? ` at least the ${formatDuration(f.retryAfterMs)} it asked for` : ''}`,
        { details, ...hint },
      );
    case status.ABORTED:
    case status.CANCELLED:
    case status.UNKNOWN:
      return new AgentError(
        'AGENT_E_CA_UNAVAILABLE',
        `the CA (${where}) failed the call: ${said}; will retry`,
        { details, ...hint },
      );
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return new AgentError(
        'AGENT_E_CA_AUTH',
        `the CA (${where}) did not accept our credential: ${said}; ${ctx.credential === 'mtls' ? 'check that the certificate in CERTS_DIR was issued by this CA and has not expired' : 'check that the CA accepts GCE identity tokens for this audience (GCE_IDENTITY_AUDIENCE)'}`,
        { details, ...hint },
      );
    case status.UNIMPLEMENTED:
      return new AgentError(
        'AGENT_E_CA_REJECTED',
        `the CA at ${ctx.address} does not serve ${ctx.api}: ${said}; set CA_API to ${ctx.api === 'HandleCSR' ? 'CreateCertificate' : 'HandleCSR'}`,
        { details, ...hint },
      );
    case status.INTERNAL:
      if (/^Response message parsing error/.test(f.details)) {
        // grpc-js could not decode the CA's message.
        return new AgentError(
          'AGENT_E_CA_BAD_RESPONSE',
          `the CA (${where}) sent an unreadable answer: ${said}`,
          { details, ...hint },
        );
      }
      return new AgentError('AGENT_E_CA_REJECTED', `the CA (${where}) refused the CSR: ${said}`, {
        details,
        ...hint,
      });
    default:
      return new AgentError('AGENT_E_CA_REJECTED', `the CA (${where}) refused the CSR: ${said}`, {
        details,
        ...hint,
      });
  }
}
