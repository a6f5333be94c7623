/**
 * Can this host reach the CA, as the agent would: a TLS handshake with the name, the root and
 * (onprem) the client certificate a CSR uses, ALPN h2 as gRPC does. Sends no request. For
 * `check`; returns what it found, with the code a CSR would fail with.
 */
import * as tls from 'node:tls';
import { describeSystemError, type ErrorCode } from '../lib/errors';
import { splitHostPort } from '../lib/host-port';

export interface CaProbeTarget {
  /** CITADEL_ADDRESS, host:port. */
  readonly address: string;
  /** CITADEL_SERVER_NAME: the name the CA's certificate must carry. */
  readonly serverName: string;
  /** root-cert.pem: what the CA's certificate must verify to. */
  readonly rootPem: string;
  /** The client certificate (onprem mTLS), when there is one. */
  readonly client?: { readonly keyPem: string; readonly chainPem: string };
  /** Default 3 s. */
  readonly timeoutMs?: number;
}

export type CaProbeResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** A socket error that means the CA is not there (or not reachable), not that TLS failed. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
]);

export function probeCa(t: CaProbeTarget): Promise<CaProbeResult> {
  const timeoutMs = t.timeoutMs ?? 3000;
  const { host, port } = splitHostPort(t.address);
  return new Promise((resolve) => {
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({
        host,
        port,
        servername: t.serverName,
        ca: t.rootPem,
        ALPNProtocols: ['h2'],
        ...(t.client ? { key: t.client.keyPem, cert: t.client.chainPem } : {}),
        timeout: timeoutMs,
      });
    } catch (e) {
      // The client certificate cannot be used at all (a key that does not match it).
      resolve({
        ok: false,
        code: 'AGENT_E_BOOTSTRAP_INVALID',
        message: `${t.address}: the client certificate cannot be used (${(e as Error).message}); check key.pem and cert-chain.pem`,
      });
      return;
    }
    const done = (r: CaProbeResult): void => {
      socket.destroy();
      resolve(r);
    };
    socket.once('secureConnect', () => {
      done({ ok: true });
    });
    socket.once('timeout', () => {
      done({
        ok: false,
        code: 'AGENT_E_CA_UNAVAILABLE',
        message: `${t.address}: no answer within ${timeoutMs / 1000} s; check CITADEL_ADDRESS and the network path to the CA`,
      });
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      const c = e.code ?? '';
      done(
        UNREACHABLE.has(c)
          ? {
              ok: false,
              code: 'AGENT_E_CA_UNAVAILABLE',
              message: `${describeSystemError('cannot connect to', t.address, e)}; check CITADEL_ADDRESS and that the CA is up and reachable from this host`,
            }
          : {
              ok: false,
              code: 'AGENT_E_CA_AUTH',
              message: `${t.address}: the TLS handshake failed (${c || e.message}); check root-cert.pem, CITADEL_SERVER_NAME (${t.serverName}) and the client certificate`,
            },
      );
    });
  });
}
