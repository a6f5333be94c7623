import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { certSerial, formatSerial } from '../lib/cert-serial';
import {
  IstioCAService,
  IstioCertificateService,
  type CsrRequestMsg,
  type CsrResponseMsg,
  type IstioCertificateRequestMsg,
  type IstioCertificateResponseMsg,
} from './protos';
import { encodeStatusWithRetryInfo } from './wire';
import {
  createIntermediate,
  createRoot,
  CsrError,
  fingerprint256,
  issueKeyAndCert,
  issueLeaf,
  issueServerCert,
  loadAuthority,
  normalizePem,
  parseCsr,
  type Authority,
} from './signer';
import type { CaApi, CaCallRecord, DevCa, DevCaFault, DevCaOptions } from './types';

/**
 * A Citadel-compatible CA for tests, labs and `istio-node-agent dev`: real gRPC over TLS serving
 * both `IstioCAService/HandleCSR` (1.0) and `IstioCertificateService/CreateCertificate` (1.1+),
 * with Citadel 1.0's checks (security/pkg/server/ca/server.go):
 *   1. TLS asks for a client certificate and verifies it if given (VerifyClientCertIfGiven).
 *   2. Authenticators in order: the client certificate's SANs, then the bearer token (only when
 *      a tokenVerifier is set); neither → UNAUTHENTICATED "request authenticate failure".
 *   3. CSR parse error → INVALID_ARGUMENT "CSR parsing error"; no SAN → INVALID_ARGUMENT.
 *   4. No authorization: as in 1.0, the CSR's SAN is not checked against the caller.
 *   5. TTL above maxTtlMs → INTERNAL "CSR signing error".
 * Every call is recorded in `calls`, with what the client showed.
 */

const DAY_MS = 86_400_000;
const DEFAULT_SERVER_NAMES = ['istio-citadel', 'istio-ca', 'localhost', '127.0.0.1'] as const;

class CallError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    /** Trailers to send with the status (a retry hint). */
    readonly metadata?: grpc.Metadata,
  ) {
    super(message);
  }
}

/** The trailers that ask a client to wait `ms` before its next try. */
function retryHintTrailers(
  code: grpc.status,
  message: string,
  ms: number,
  how: 'pushback' | 'retry-info' | 'both',
): grpc.Metadata {
  const md = new grpc.Metadata();
  if (how !== 'retry-info') md.set('grpc-retry-pushback-ms', String(Math.round(ms)));
  if (how !== 'pushback')
    md.set('grpc-status-details-bin', encodeStatusWithRetryInfo(code, message, ms));
  return md;
}

/** Serves fixed PEM material to grpc-js's certificate-provider credentials. */
class StaticCertificateProvider implements grpc.experimental.CertificateProvider {
  constructor(
    private readonly ca: Buffer,
    private readonly cert: Buffer,
    private readonly key: Buffer,
  ) {}
  // grpc-js registers the watcher after the listeners, so answer on the next microtask.
  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    queueMicrotask(() => {
      l({ caCertificate: this.ca });
    });
  }
  removeCaCertificateListener(): void {}
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    queueMicrotask(() => {
      l({ certificate: this.cert, privateKey: this.key });
    });
  }
  removeIdentityCertificateListener(): void {}
}

interface Authenticated {
  readonly identities: readonly string[];
  readonly via: 'mtls' | 'token';
}

export async function startDevCa(opts: DevCaOptions): Promise<DevCa> {
  const now = opts.clock ?? Date.now;
  const maxTtlMs = opts.maxTtlMs ?? 90 * DAY_MS;
  const maxRecords = opts.maxCallRecords ?? 1000;
  const host = opts.host ?? '127.0.0.1';

  const root = opts.root
    ? await loadAuthority(opts.root.certPem, opts.root.keyPem)
    : await createRoot(now());
  const signer: Authority = opts.intermediate ? await createIntermediate(root, now()) : root;
  const intermediates = signer === root ? [] : [signer.certPem];
  const serverCert = await issueServerCert(root, opts.serverNames ?? DEFAULT_SERVER_NAMES, now());
  const issuers = [root.certPem, ...intermediates].map((p) => new X509Certificate(p));

  const calls: CaCallRecord[] = [];
  const record = (r: CaCallRecord): void => {
    calls.push(r);
    if (calls.length > maxRecords) calls.splice(0, calls.length - maxRecords);
    opts.onCall?.(r);
  };

  /** Identity from the verified client certificate, else from the bearer token. */
  function authenticate(
    call: grpc.ServerUnaryCall<unknown, unknown>,
    base: Partial<Mutable<CaCallRecord>>,
  ): Authenticated | undefined {
    const peer = call.getAuthContext().sslPeerCertificate;
    let fromCert: string[] = [];
    if (peer?.raw) {
      const cert = new X509Certificate(peer.raw);
      base.peerCertSerial = certSerial(cert);
      base.peerCertFingerprint = fingerprint256(peer.raw);
      fromCert = sansOf(cert);
      base.peerCertSans = fromCert;
    }
    const auth = call.metadata.get('authorization')[0];
    if (typeof auth === 'string') {
      base.bearer = auth.replace(/^Bearer\s+/i, '');
    }
    // The peer certificate is only present when it verified to the root (grpc-js hides others).
    if (fromCert.length > 0 && peer?.raw && issuedUnder(peer.raw)) {
      return { identities: fromCert, via: 'mtls' };
    }
    if (base.bearer !== undefined && opts.tokenVerifier) {
      let id: string | undefined;
      try {
        id = opts.tokenVerifier(base.bearer);
      } catch {
        id = undefined; // a verifier that throws rejects the token
      }
      if (id !== undefined) return { identities: [id], via: 'token' };
    }
    return undefined;
  }

  /**
   * Defence in depth: the TLS layer verified the chain already (grpc-js shows handlers only a
   * verified certificate); check again that the leaf was signed by our root or intermediate.
   */
  function issuedUnder(raw: Buffer): boolean {
    const cert = new X509Certificate(raw);
    return issuers.some((i) => cert.checkIssued(i) && cert.verify(i.publicKey));
  }

  async function sign(
    api: CaApi,
    csrPem: string,
    requestedTtlMs: number,
    base: Partial<Mutable<CaCallRecord>>,
  ): Promise<{ chain: string[]; record: CaCallRecord }> {
    let parsed;
    try {
      parsed = await parseCsr(csrPem);
    } catch (e) {
      if (e instanceof CsrError) throw new CallError(grpc.status.INVALID_ARGUMENT, e.message);
      throw e;
    }
    base.requestedIdentity = parsed.sans;
    if (!parsed.san || parsed.sans.length === 0) {
      throw new CallError(
        grpc.status.INVALID_ARGUMENT,
        'CSR identity extraction error (the SAN extension does not exist)',
      );
    }
    if (requestedTtlMs > maxTtlMs) {
      throw new CallError(
        grpc.status.INTERNAL,
        `CSR signing error (requested TTL ${Math.round(requestedTtlMs / 1000)}s is greater than the max allowed TTL ${Math.round(maxTtlMs / 1000)}s)`,
      );
    }
    const ttl = requestedTtlMs > 0 ? Math.min(requestedTtlMs, opts.ttlMs) : opts.ttlMs;
    const t = now();
    const leaf = await issueLeaf(signer, {
      publicKey: parsed.csr.publicKey,
      subject: parsed.csr.subjectName,
      san: parsed.san,
      notBefore: t,
      notAfter: t + ttl,
    });
    base.issuedSerial = formatSerial(leaf.serialNumber);
    const rec = { ...base, outcome: 'issued' } as CaCallRecord;
    let chain = [normalizePem(leaf.toString('pem')), ...intermediates];
    if (api === 'CreateCertificate') chain.push(root.certPem);
    if (opts.tamper) chain = await opts.tamper(chain, rec);
    return { chain, record: rec };
  }

  async function applyFault(rec: CaCallRecord): Promise<DevCaFault | undefined> {
    const f = opts.fault ? await opts.fault(rec) : undefined;
    if (f?.kind === 'delay') {
      await new Promise((r) => setTimeout(r, f.ms));
      return undefined;
    }
    if (f?.kind === 'status') {
      const trailers =
        f.retryAfterMs !== undefined
          ? retryHintTrailers(f.code, f.message, f.retryAfterMs, f.hint ?? 'pushback')
          : undefined;
      throw new CallError(f.code, f.message, trailers);
    }
    return f;
  }

  function handler<Req, Res>(
    api: CaApi,
    body: (
      req: Req,
      base: Partial<Mutable<CaCallRecord>>,
      call: grpc.ServerUnaryCall<Req, Res>,
    ) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const base: Partial<Mutable<CaCallRecord>> = { api, at: now() };
      body(call.request, base, call).then(
        (res) => {
          callback(null, res);
        },
        (e: unknown) => {
          const err =
            e instanceof CallError
              ? e
              : new CallError(grpc.status.INTERNAL, `CSR signing error (${String(e)})`);
          record({ ...base, outcome: `${grpc.status[err.code]}: ${err.message}` } as CaCallRecord);
          callback({
            code: err.code,
            details: err.message,
            ...(err.metadata ? { metadata: err.metadata } : {}),
          });
        },
      );
    };
  }

  const handleCsr = handler<CsrRequestMsg, CsrResponseMsg>('HandleCSR', async (req, base, call) => {
    base.credentialType = req.credentialType;
    base.nodeAgentCredential = req.nodeAgentCredential.toString('utf8');
    base.requestedTtlMs = req.requestedTtlMinutes * 60_000;
    const who = authenticate(call, base);
    if (who) base.authenticatedIdentity = who.identities;
    const pre = await applyFault({ ...base, outcome: 'pending' } as CaCallRecord);
    if (!who) throw new CallError(grpc.status.UNAUTHENTICATED, 'request authenticate failure');
    if (pre?.kind === 'notApproved') {
      record({ ...base, outcome: 'not approved' } as CaCallRecord);
      return {
        isApproved: false,
        status: undefined,
        signedCert: Buffer.alloc(0),
        certChain: Buffer.alloc(0),
      };
    }
    const { chain, record: rec } = await sign(
      'HandleCSR',
      req.csrPem.toString('utf8'),
      base.requestedTtlMs,
      base,
    );
    record(rec);
    return {
      isApproved: true,
      status: undefined,
      signedCert: Buffer.from(chain[0] ?? ''),
      certChain: Buffer.from(chain.slice(1).join('')),
    };
  });

  const createCertificate = handler<IstioCertificateRequestMsg, IstioCertificateResponseMsg>(
    'CreateCertificate',
    async (req, base, call) => {
      base.subjectId = req.subjectId;
      base.requestedTtlMs = req.validityDuration * 1000;
      if (Object.keys(req.metadata).length > 0) base.metadata = req.metadata;
      const who = authenticate(call, base);
      if (who) base.authenticatedIdentity = who.identities;
      const pre = await applyFault({ ...base, outcome: 'pending' } as CaCallRecord);
      if (!who) throw new CallError(grpc.status.UNAUTHENTICATED, 'request authenticate failure');
      if (pre?.kind === 'notApproved')
        throw new CallError(grpc.status.INTERNAL, 'CSR signing error (not approved)');
      const { chain, record: rec } = await sign(
        'CreateCertificate',
        req.csr,
        base.requestedTtlMs,
        base,
      );
      record(rec);
      return { certChain: chain };
    },
  );

  const server = new grpc.Server({ 'grpc.max_receive_message_length': 1 << 20 });
  server.addService(IstioCAService, { HandleCSR: handleCsr });
  server.addService(IstioCertificateService, { CreateCertificate: createCertificate });
  const provider = new StaticCertificateProvider(
    Buffer.from(root.certPem),
    Buffer.from(serverCert.certPem), // issued by the root directly
    Buffer.from(serverCert.keyPem),
  );
  // requestCert without rejectUnauthorized: a client certificate is asked for and verified
  // against the root when given; grpc-js exposes it to handlers only when it verified.
  const creds = grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    provider,
    false,
  );
  const bindHost = isIPv6(host) ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${opts.port ?? 0}`, creds, (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });

  let stopped = false;
  return {
    address: `${bindHost}:${port}`,
    port,
    rootPem: root.certPem,
    rootKeyPem: root.keyPem,
    intermediatePem: intermediates[0],
    calls,
    async issueBootstrap(identity, ttlMs, alg = 'RSA') {
      const t = now();
      const { certPem, keyPem } = await issueKeyAndCert(signer, identity, t, t + ttlMs, alg);
      return { certChainPem: certPem + intermediates.join(''), keyPem, rootPem: root.certPem };
    },
    stop() {
      if (stopped) return Promise.resolve();
      stopped = true;
      return new Promise<void>((resolve) => {
        // Finish calls in flight for a moment, then cut what is left (tests bring the CA "down").
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 250);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function sansOf(cert: X509Certificate): string[] {
  const s = cert.subjectAltName;
  if (!s) return [];
  // Node's format: "URI:spiffe://..., DNS:x, IP Address:1.2.3.4"
  return s
    .split(/,\s*/)
    .map((p) => p.replace(/^(?:URI|DNS|IP Address|email):/, ''))
    .filter((p) => p.length > 0);
}
