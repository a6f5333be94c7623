import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { AgentError } from '../lib/errors';
import { installIpFastPath } from './ip-fast-path';
import { CREATE_CERTIFICATE, HANDLE_CSR } from './protos';
import { splitPemCertificates } from '../lib/pem';
import { chainFromList, mapCallFailure, retryHintMs, type CallContext } from './response';
import type { CaClient, CaClientOptions, CsrRequest } from './types';

const INT32_MAX = 2 ** 31 - 1;

/**
 * The largest message accepted from the CA. A workload chain is a few KiB; grpc-js refuses a
 * larger message before decoding it (RESOURCE_EXHAUSTED "Received message larger than max"),
 * which the client reports as AGENT_E_CA_BAD_RESPONSE. The certificate component bounds the PEM
 * text again (64 KiB) and the chain length.
 */
export const MAX_RECEIVE_MESSAGE_BYTES = 128 * 1024;

/**
 * A client for one Citadel endpoint and one credential. Credentials are immutable in grpc-js, so
 * the certificate component makes a new client for each CSR: after a renewal the next CSR
 * authenticates with the newest certificate (Istio 1.0 loaded it once, istio#22176).
 *
 * The channel connects lazily on the first call and does not wait for readiness: a CA that is
 * down fails the call at once with UNAVAILABLE instead of holding it until the deadline.
 */
export function createCaClient(opts: CaClientOptions): CaClient {
  // Node's IPv6 pattern costs ~10 ms the first time TLS or grpc-js asks about an address.
  installIpFastPath();
  const cred = opts.credential;
  let ssl: grpc.ChannelCredentials;
  try {
    // Node accepts a CA bundle it cannot parse and fails later in every handshake; check now.
    const roots = splitPemCertificates(opts.rootPem);
    if (!roots) throw new Error('root-cert.pem holds no PEM certificate');
    for (const r of roots) new X509Certificate(r);
    ssl =
      cred.kind === 'mtls'
        ? grpc.credentials.createSsl(
            Buffer.from(opts.rootPem),
            Buffer.from(cred.keyPem),
            Buffer.from(cred.certChainPem),
          )
        : grpc.credentials.createSsl(Buffer.from(opts.rootPem));
  } catch (e) {
    // Node's TLS refused the material: unreadable PEM, or a key that does not match the cert.
    throw new AgentError(
      'AGENT_E_BOOTSTRAP_INVALID',
      `cannot use ${cred.kind === 'mtls' ? 'the certificate and key in CERTS_DIR, or root-cert.pem,' : 'root-cert.pem'} for TLS to the CA: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const channelOptions: grpc.ChannelOptions = {
    'grpc.ssl_target_name_override': opts.serverName,
    'grpc.default_authority': opts.serverName,
    // One call per client: no retries inside grpc-js, the rotator owns retry policy.
    'grpc.enable_retries': 0,
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
  };
  const client = new grpc.Client(opts.address, ssl, channelOptions);
  const ctx: CallContext = {
    api: opts.api,
    address: opts.address,
    serverName: opts.serverName,
    credential: cred.kind,
  };
  let closed = false;

  function metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (cred.kind === 'token') md.set('authorization', `Bearer ${cred.token}`);
    return md;
  }

  function call<Req, Res>(
    method: grpc.MethodDefinition<Req, Res>,
    req: Req,
    signal?: AbortSignal,
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (closed) {
        reject(new AgentError('AGENT_E_INTERNAL', 'CA client used after close()'));
        return;
      }
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      // grpc-js takes a deadline on the system clock and compares it with Date.now() itself.
      const deadline = Date.now() + opts.timeoutMs;
      const onAbort = (): void => {
        c.cancel();
      };
      const c = client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        req,
        metadata(),
        { deadline },
        (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) {
            reject(signal.reason as Error);
          } else if (err) {
            // A retry hint rides in the trailers (grpc-js keeps both keys in err.metadata).
            const md = err.metadata as grpc.Metadata | undefined;
            const pushback = md?.get('grpc-retry-pushback-ms')[0];
            const statusDetails = md?.get('grpc-status-details-bin')[0];
            const retryAfterMs = retryHintMs(
              typeof pushback === 'string' ? pushback : undefined,
              Buffer.isBuffer(statusDetails) ? statusDetails : undefined,
            );
            reject(
              mapCallFailure(
                { code: err.code, details: err.details || err.message, retryAfterMs },
                ctx,
              ),
            );
          } else if (res === undefined || res === null) {
            reject(
              new AgentError(
                'AGENT_E_CA_BAD_RESPONSE',
                `the CA (${opts.api} at ${opts.address}) sent no response`,
              ),
            );
          } else {
            resolve(res);
          }
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async function handleCsr(req: CsrRequest, signal?: AbortSignal): Promise<string[]> {
    const res = await call(
      HANDLE_CSR,
      {
        csrPem: Buffer.from(req.csrPem),
        nodeAgentCredential: Buffer.from(cred.kind === 'mtls' ? cred.certChainPem : cred.token),
        credentialType: cred.kind === 'mtls' ? 'onprem' : cred.credentialType,
        requestedTtlMinutes: Math.min(INT32_MAX, Math.max(1, Math.floor(req.ttlMs / 60_000))),
      },
      signal,
    );
    if (!res.isApproved) {
      const why = res.status?.message ? `: ${res.status.message}` : '';
      throw new AgentError(
        'AGENT_E_CA_REJECTED',
        `the CA (HandleCSR at ${opts.address}) did not approve the CSR${why}`,
        { details: { api: opts.api, address: opts.address } },
      );
    }
    const leafText = res.signedCert.toString('utf8');
    const leaf = splitPemCertificates(leafText);
    if (!leaf || leaf.length !== 1) {
      throw badResponse(
        leafText.trim() === '' ? 'signed_cert is empty' : 'signed_cert is not one PEM certificate',
      );
    }
    const chainText = res.certChain.toString('utf8');
    if (chainText.trim() === '') return leaf;
    const chain = splitPemCertificates(chainText);
    if (!chain) throw badResponse('cert_chain is not PEM certificates');
    return [...leaf, ...chain];
  }

  async function createCertificate(req: CsrRequest, signal?: AbortSignal): Promise<string[]> {
    const res = await call(
      CREATE_CERTIFICATE,
      {
        csr: req.csrPem,
        subjectId: req.identity,
        validityDuration: Math.max(1, Math.floor(req.ttlMs / 1000)),
        metadata: req.metadata ?? {},
      },
      signal,
    );
    if (res.certChain.length === 0) throw badResponse('cert_chain is empty');
    const chain = chainFromList(res.certChain);
    if (!chain) throw badResponse('cert_chain holds something that is not a PEM certificate');
    return chain;
  }

  function badResponse(why: string): AgentError {
    return new AgentError(
      'AGENT_E_CA_BAD_RESPONSE',
      `the CA (${opts.api} at ${opts.address}) sent a malformed answer: ${why}`,
      {
        details: { api: opts.api, address: opts.address },
      },
    );
  }

  return {
    sign(req, signal) {
      return opts.api === 'HandleCSR' ? handleCsr(req, signal) : createCertificate(req, signal);
    },
    connect() {
      if (!closed) client.getChannel().getConnectivityState(true);
    },
    close() {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}
