// The CA client against the embedded dev CA: real gRPC over TLS on loopback, both APIs, both
// credentials, and every way a call can fail. No root needed.
import t, { type Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  createCaClient,
  startDevCa,
  type CaApi,
  type CaClientOptions,
  type CaCredential,
  type DevCa,
  type DevCaOptions,
} from '../../src/ca/index';
import { HANDLE_CSR, IstioCAService } from '../../src/ca/protos';
import { issueServerCert, loadAuthority } from '../../src/ca/signer';
import { AgentError } from '../../src/lib/errors';
import { rejectsWithCode } from '../helpers/agent-error';
import { makeCsr } from '../helpers/csr';
import { tmpDir } from '../helpers/tmp';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const APIS: readonly CaApi[] = ['HandleCSR', 'CreateCertificate'];
const HOUR = 3_600_000;

async function devCa(t: Test, opts: Partial<DevCaOptions> = {}): Promise<DevCa> {
  const ca = await startDevCa({ ttlMs: HOUR, ...opts });
  t.teardown(() => ca.stop());
  return ca;
}

async function mtls(ca: DevCa, identity = ID): Promise<CaCredential> {
  const b = await ca.issueBootstrap(identity, HOUR, 'ECDSA');
  return { kind: 'mtls', certChainPem: b.certChainPem, keyPem: b.keyPem };
}

function client(
  ca: DevCa,
  api: CaApi,
  credential: CaCredential,
  over: Partial<CaClientOptions> = {},
) {
  return createCaClient({
    address: ca.address,
    serverName: 'istio-citadel',
    rootPem: ca.rootPem,
    api,
    timeoutMs: 5000,
    credential,
    ...over,
  });
}

async function signOnce(
  ca: DevCa,
  api: CaApi,
  credential: CaCredential,
  req: { csrPem: string; identity?: string; ttlMs?: number; metadata?: Record<string, string> },
  over: Partial<CaClientOptions> = {},
  signal?: AbortSignal,
): Promise<string[]> {
  const c = client(ca, api, credential, over);
  try {
    return await c.sign({ identity: ID, ttlMs: HOUR, ...req }, signal);
  } finally {
    c.close();
  }
}

/** Serves `server` over TLS with the given certificate on an ephemeral loopback port. */
function bindTls(server: grpc.Server, tls: { certPem: string; keyPem: string }): Promise<number> {
  const creds = grpc.ServerCredentials.createSsl(null, [
    { private_key: Buffer.from(tls.keyPem), cert_chain: Buffer.from(tls.certPem) },
  ]);
  return new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', creds, (e, p) => {
      if (e) reject(e);
      else resolve(p);
    });
  });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) =>
    s.close(() => {
      r();
    }),
  );
  return port;
}

for (const api of APIS) {
  void t.test(
    `${api}: issues for a CSR over mTLS and records what the client showed`,
    async (t) => {
      const ca = await devCa(t);
      const cred = await mtls(ca);
      const bootSerial = new X509Certificate((cred as { certChainPem: string }).certChainPem)
        .serialNumber;
      for (const alg of ['ECDSA', 'RSA'] as const) {
        const csr = await makeCsr(ID, { alg });
        const chain = await signOnce(ca, api, cred, { csrPem: csr.csrPem, ttlMs: 10 * 60_000 });
        t.equal(
          chain.length,
          api === 'HandleCSR' ? 1 : 2,
          'HandleCSR: the leaf; CreateCertificate: leaf and root',
        );
        const leaf = new X509Certificate(chain[0]!);
        t.ok(leaf.checkPrivateKey(createPrivateKey(csr.keyPem)), `${alg}: the leaf is for our key`);
        t.equal(leaf.subjectAltName, `URI:${ID}`);
        if (api === 'CreateCertificate') t.equal(chain[1], ca.rootPem, 'the root comes last');
        const rec = ca.calls.at(-1)!;
        t.equal(rec.api, api);
        t.equal(rec.outcome, 'issued');
        t.equal(rec.peerCertSerial, bootSerial, 'the CA saw the bootstrap certificate');
        t.same(rec.peerCertSans, [ID]);
        t.match(rec.peerCertFingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
        t.same(rec.authenticatedIdentity, [ID]);
        t.same(rec.requestedIdentity, [ID]);
        t.equal(rec.requestedTtlMs, 10 * 60_000);
        t.equal(rec.issuedSerial, leaf.serialNumber);
        t.equal(rec.bearer, undefined, 'no bearer on the mTLS path');
        if (api === 'HandleCSR') {
          t.equal(rec.credentialType, 'onprem');
          t.equal(
            rec.nodeAgentCredential,
            (cred as { certChainPem: string }).certChainPem,
            'credential = the cert chain',
          );
        } else {
          t.equal(rec.subjectId, ID, 'subject_id = the identity');
        }
      }
    },
  );

  void t.test(`${api}: the next CSR authenticates with the certificate just issued`, async (t) => {
    const ca = await devCa(t);
    let cred = await mtls(ca);
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const csr = await makeCsr(ID);
      const chain = await signOnce(ca, api, cred, { csrPem: csr.csrPem });
      seen.push(ca.calls.at(-1)!.peerCertSerial!);
      t.equal(ca.calls.at(-1)!.peerCertSerial, seen[i], `call ${i + 1}`);
      if (i > 0)
        t.equal(
          seen[i],
          ca.calls.at(-2)!.issuedSerial,
          `call ${i + 1} showed the cert issued by call ${i}`,
        );
      cred = { kind: 'mtls', certChainPem: chain.join(''), keyPem: csr.keyPem };
    }
    t.equal(new Set(seen).size, 3, 'three different client certificates');
  });

  void t.test(`${api}: token credential: bearer metadata, server-only TLS`, async (t) => {
    const ca = await devCa(t, {
      tokenVerifier: (tok) => (tok === 'good.jwt.sig' ? ID : undefined),
    });
    const csr = await makeCsr(ID);
    const chain = await signOnce(
      ca,
      api,
      { kind: 'token', token: 'good.jwt.sig', credentialType: 'gcp' },
      { csrPem: csr.csrPem },
    );
    t.ok(chain.length >= 1);
    const rec = ca.calls.at(-1)!;
    t.equal(rec.bearer, 'good.jwt.sig', 'sent as authorization: Bearer');
    t.equal(rec.peerCertSerial, undefined, 'no client certificate');
    t.same(rec.authenticatedIdentity, [ID]);
    if (api === 'HandleCSR') {
      t.equal(rec.credentialType, 'gcp');
      t.equal(rec.nodeAgentCredential, 'good.jwt.sig', 'and as the request credential');
    }
    await rejectsWithCode(
      t,
      signOnce(
        ca,
        api,
        { kind: 'token', token: 'bad.jwt.sig', credentialType: 'gcp' },
        { csrPem: csr.csrPem },
      ),
      'AGENT_E_CA_AUTH',
      /request authenticate failure/,
    );
    t.equal(ca.calls.at(-1)!.outcome, 'UNAUTHENTICATED: request authenticate failure');
  });

  void t.test(`${api}: no usable credential → AGENT_E_CA_AUTH`, async (t) => {
    const ca = await devCa(t); // no token verifier: a bearer alone authenticates nothing
    const csr = await makeCsr(ID);
    const e = await rejectsWithCode(
      t,
      signOnce(
        ca,
        api,
        { kind: 'token', token: 'a.b.c', credentialType: 'gcp' },
        { csrPem: csr.csrPem },
      ),
      'AGENT_E_CA_AUTH',
    );
    t.equal(e.retryable, false);
    t.equal(ca.calls.at(-1)!.outcome, 'UNAUTHENTICATED: request authenticate failure');
  });

  void t.test(`${api}: a client certificate from a foreign root → AGENT_E_CA_AUTH`, async (t) => {
    const ca = await devCa(t);
    const foreign = await devCa(t);
    const csr = await makeCsr(ID);
    await rejectsWithCode(
      t,
      signOnce(ca, api, await mtls(foreign), { csrPem: csr.csrPem }),
      'AGENT_E_CA_AUTH',
      /authenticate/,
    );
    const rec = ca.calls.at(-1)!;
    t.equal(rec.peerCertSerial, undefined, 'an unverified certificate is not taken as an identity');
    t.equal(rec.authenticatedIdentity, undefined);
  });

  void t.test(`${api}: CSR without a SAN → AGENT_E_CA_REJECTED`, async (t) => {
    const ca = await devCa(t);
    const csr = await makeCsr(undefined, { subject: 'O=acme' });
    const e = await rejectsWithCode(
      t,
      signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }),
      'AGENT_E_CA_REJECTED',
      /SAN extension does not exist/,
    );
    t.equal(e.retryable, false);
  });

  void t.test(`${api}: a CSR that is not one → AGENT_E_CA_REJECTED`, async (t) => {
    const ca = await devCa(t);
    await rejectsWithCode(
      t,
      signOnce(ca, api, await mtls(ca), { csrPem: 'not a csr' }),
      'AGENT_E_CA_REJECTED',
      /CSR parsing error/,
    );
    // A CSR whose signature does not match its key (someone else's request, altered).
    const a = await makeCsr(ID);
    const lines = a.csrPem.trim().split('\n');
    const body = Buffer.from(lines.slice(1, -1).join(''), 'base64');
    body[body.length - 5]! ^= 0xff; // flip a byte of the signature
    const forged = `${lines[0]}\n${body.toString('base64')}\n${lines.at(-1)}\n`;
    await rejectsWithCode(
      t,
      signOnce(ca, api, await mtls(ca), { csrPem: forged }),
      'AGENT_E_CA_REJECTED',
      /signature/,
    );
  });

  void t.test(
    `${api}: TTL above the CA's maximum → AGENT_E_CA_REJECTED (Citadel's signing error)`,
    async (t) => {
      const ca = await devCa(t, { maxTtlMs: 2 * HOUR });
      const csr = await makeCsr(ID);
      await rejectsWithCode(
        t,
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem, ttlMs: 3 * HOUR }),
        'AGENT_E_CA_REJECTED',
        /CSR signing error.*max allowed TTL/,
      );
      t.match(ca.calls.at(-1)!.outcome, /^INTERNAL: CSR signing error/);
      // At the maximum it issues, with the CA's own (shorter) TTL.
      const chain = await signOnce(ca, api, await mtls(ca), {
        csrPem: csr.csrPem,
        ttlMs: 2 * HOUR,
      });
      const leaf = new X509Certificate(chain[0]!);
      t.equal(
        Date.parse(leaf.validTo) - Date.parse(leaf.validFrom),
        HOUR,
        'min(requested, CA TTL)',
      );
    },
  );

  void t.test(
    `${api}: CA stopped → AGENT_E_CA_UNAVAILABLE at once; back on the same port → issues again`,
    async (t) => {
      const ca = await startDevCa({ ttlMs: HOUR });
      const cred = await mtls(ca);
      const csr = await makeCsr(ID);
      await ca.stop();
      const started = Date.now();
      const e = await rejectsWithCode(
        t,
        signOnce(ca, api, cred, { csrPem: csr.csrPem }, { timeoutMs: 10_000 }),
        'AGENT_E_CA_UNAVAILABLE',
        /ECONNREFUSED/,
      );
      t.ok(
        Date.now() - started < 5000,
        `failed fast (${Date.now() - started} ms), not at the 10 s deadline`,
      );
      t.equal(e.retryable, true);
      const back = await startDevCa({
        ttlMs: HOUR,
        port: ca.port,
        root: { certPem: ca.rootPem, keyPem: ca.rootKeyPem },
      });
      t.teardown(() => back.stop());
      t.equal(back.address, ca.address);
      const chain = await signOnce(back, api, cred, { csrPem: csr.csrPem });
      t.ok(chain.length >= 1, 'the old bootstrap still authenticates: same root');
    },
  );

  void t.test(
    `${api}: a CA that does not answer → AGENT_E_CA_UNAVAILABLE at the deadline`,
    async (t) => {
      const ca = await devCa(t, { fault: () => ({ kind: 'delay', ms: 3000 }) });
      const csr = await makeCsr(ID);
      const started = Date.now();
      await rejectsWithCode(
        t,
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }, { timeoutMs: 300 }),
        'AGENT_E_CA_UNAVAILABLE',
        /deadline/,
      );
      t.ok(
        Date.now() - started < 2500,
        `gave up at the deadline (${Date.now() - started} ms), before the CA answered`,
      );
    },
  );

  void t.test(
    `${api}: the caller's abort cancels the call and rejects with its reason`,
    async (t) => {
      const ca = await devCa(t, { fault: () => ({ kind: 'delay', ms: 3000 }) });
      const csr = await makeCsr(ID);
      const ac = new AbortController();
      const reason = new Error('stopping');
      setTimeout(() => {
        ac.abort(reason);
      }, 100);
      const started = Date.now();
      await t.rejects(
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }, {}, ac.signal),
        reason,
      );
      t.ok(Date.now() - started < 2500, 'did not wait for the CA');
      await t.rejects(
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }, {}, ac.signal),
        reason,
        'already aborted',
      );
    },
  );

  void t.test(
    `${api}: server name override: address is an IP, the cert says istio-citadel`,
    async (t) => {
      const ca = await devCa(t, {
        serverNames: ['istio-citadel', 'istio-citadel.istio-system.svc.cluster.local'],
      });
      t.match(ca.address, /^127\.0\.0\.1:\d+$/);
      const csr = await makeCsr(ID);
      const chain = await signOnce(
        ca,
        api,
        await mtls(ca),
        { csrPem: csr.csrPem },
        { serverName: 'istio-citadel' },
      );
      t.ok(chain.length >= 1, 'accepted with serverName istio-citadel');
      const e = await rejectsWithCode(
        t,
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }, { serverName: 'istio-pilot' }),
        'AGENT_E_CA_AUTH',
        /TLS handshake.*server name istio-pilot.*altnames/,
      );
      t.match(e.message, /CITADEL_SERVER_NAME/, 'says what to check');
      // The IP itself is not in this CA's certificate either.
      await rejectsWithCode(
        t,
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }, { serverName: '127.0.0.1' }),
        'AGENT_E_CA_AUTH',
      );
    },
  );

  void t.test(`${api}: trusting the wrong root → AGENT_E_CA_AUTH`, async (t) => {
    const ca = await devCa(t);
    const other = await devCa(t);
    const csr = await makeCsr(ID);
    await rejectsWithCode(
      t,
      signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }, { rootPem: other.rootPem }),
      'AGENT_E_CA_AUTH',
      /self-signed certificate in certificate chain/,
    );
  });

  void t.test(`${api}: a CA that answers with an error status`, async (t) => {
    const csr = await makeCsr(ID);
    const cases: [grpc.status, string][] = [
      [grpc.status.UNAVAILABLE, 'AGENT_E_CA_UNAVAILABLE'],
      [grpc.status.PERMISSION_DENIED, 'AGENT_E_CA_AUTH'],
      [grpc.status.INVALID_ARGUMENT, 'AGENT_E_CA_REJECTED'],
      [grpc.status.INTERNAL, 'AGENT_E_CA_REJECTED'],
    ];
    for (const [code, want] of cases) {
      const ca = await devCa(t, {
        fault: () => ({ kind: 'status', code, message: `test says ${grpc.status[code]}` }),
      });
      await rejectsWithCode(
        t,
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }),
        want,
        new RegExp(`test says ${grpc.status[code]}`),
      );
    }
  });

  void t.test(
    `${api}: empty or malformed chains → AGENT_E_CA_BAD_RESPONSE; PEM content passes to the caller`,
    async (t) => {
      const csr = await makeCsr(ID);
      for (const [name, tamper] of [
        ['empty', () => []],
        ['garbage', () => ['this is not PEM']],
        [
          'a key instead of a cert',
          () => ['-----BEGIN PRIVATE KEY-----\nQUFB\n-----END PRIVATE KEY-----\n'],
        ],
      ] as const) {
        const ca = await devCa(t, { tamper });
        await rejectsWithCode(
          t,
          signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }),
          'AGENT_E_CA_BAD_RESPONSE',
          /malformed/,
        );
        t.pass(name);
      }
      // Well-formed PEM whose content is nonsense is the certificate component's to judge.
      const junk = '-----BEGIN CERTIFICATE-----\nQUFBQQ==\n-----END CERTIFICATE-----\n';
      const ca = await devCa(t, { tamper: (chain) => [junk, ...chain.slice(1)] });
      const chain = await signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem });
      t.equal(chain[0], junk);
    },
  );
}

void t.test(
  'an answer larger than the receive cap (a leaf + 999 copies of the root) → AGENT_E_CA_BAD_RESPONSE',
  async (t) => {
    const csr = await makeCsr(ID);
    for (const api of APIS) {
      const ca = await devCa(t, {
        tamper: (chain) => [chain[0]!, ...Array.from({ length: 999 }, () => ca.rootPem)],
      });
      await rejectsWithCode(
        t,
        signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }),
        'AGENT_E_CA_BAD_RESPONSE',
        /larger than/,
      );
    }
  },
);

void t.test(
  'a CA asking to slow down: RESOURCE_EXHAUSTED → AGENT_E_CA_OVERLOADED, its retry hint read from either trailer',
  async (t) => {
    const csr = await makeCsr(ID);
    const cases: [grpc.status, 'pushback' | 'retry-info' | 'both', string][] = [
      [grpc.status.RESOURCE_EXHAUSTED, 'pushback', 'AGENT_E_CA_OVERLOADED'],
      [grpc.status.RESOURCE_EXHAUSTED, 'retry-info', 'AGENT_E_CA_OVERLOADED'],
      [grpc.status.UNAVAILABLE, 'both', 'AGENT_E_CA_UNAVAILABLE'],
    ];
    for (const api of APIS) {
      for (const [code, hint, want] of cases) {
        const ca = await devCa(t, {
          fault: () => ({
            kind: 'status',
            code,
            message: 'too many CSRs',
            retryAfterMs: 30_000,
            hint,
          }),
        });
        const e = await rejectsWithCode(
          t,
          signOnce(ca, api, await mtls(ca), { csrPem: csr.csrPem }),
          want,
          /too many CSRs/,
        );
        t.equal(e.retryAfterMs, 30_000, `${api} ${grpc.status[code]} via ${hint}: the hint`);
      }
      const plain = await devCa(t, {
        fault: () => ({ kind: 'status', code: grpc.status.RESOURCE_EXHAUSTED, message: 'busy' }),
      });
      const e = await rejectsWithCode(
        t,
        signOnce(plain, api, await mtls(plain), { csrPem: csr.csrPem }),
        'AGENT_E_CA_OVERLOADED',
      );
      t.equal(e.retryAfterMs, undefined, `${api}: no hint sent, none read`);
    }
  },
);

void t.test('HandleCSR: is_approved=false → AGENT_E_CA_REJECTED', async (t) => {
  const ca = await devCa(t, { fault: () => ({ kind: 'notApproved' }) });
  const csr = await makeCsr(ID);
  await rejectsWithCode(
    t,
    signOnce(ca, 'HandleCSR', await mtls(ca), { csrPem: csr.csrPem }),
    'AGENT_E_CA_REJECTED',
    /did not approve/,
  );
  t.equal(ca.calls.at(-1)!.outcome, 'not approved');
});

void t.test('HandleCSR: requested TTL is sent in whole minutes (at least 1)', async (t) => {
  const ca = await devCa(t);
  const csr = await makeCsr(ID);
  await signOnce(ca, 'HandleCSR', await mtls(ca), {
    csrPem: csr.csrPem,
    ttlMs: 90 * 60_000 + 59_000,
  });
  t.equal(ca.calls.at(-1)!.requestedTtlMs, 90 * 60_000);
  await signOnce(ca, 'HandleCSR', await mtls(ca), { csrPem: csr.csrPem, ttlMs: 20_000 });
  t.equal(ca.calls.at(-1)!.requestedTtlMs, 60_000);
});

void t.test('CreateCertificate: TTL in seconds, and the metadata Struct', async (t) => {
  const ca = await devCa(t);
  const csr = await makeCsr(ID);
  await signOnce(ca, 'CreateCertificate', await mtls(ca), {
    csrPem: csr.csrPem,
    ttlMs: 90_500,
    metadata: { CertSigner: 'vm-signer' },
  });
  const rec = ca.calls.at(-1)!;
  t.equal(rec.requestedTtlMs, 90_000);
  t.same(rec.metadata, { CertSigner: 'vm-signer' });
});

void t.test(
  'intermediate CA: HandleCSR returns leaf + intermediate, CreateCertificate adds the root',
  async (t) => {
    const ca = await devCa(t, { intermediate: true });
    t.ok(ca.intermediatePem);
    const cred = await mtls(ca); // the bootstrap chain includes the intermediate
    t.equal((cred as { certChainPem: string }).certChainPem.match(/BEGIN CERTIFICATE/g)?.length, 2);
    const csr = await makeCsr(ID);
    const a = await signOnce(ca, 'HandleCSR', cred, { csrPem: csr.csrPem });
    t.equal(a.length, 2);
    t.equal(a[1], ca.intermediatePem);
    const b = await signOnce(ca, 'CreateCertificate', cred, { csrPem: csr.csrPem });
    t.same(b.slice(1), [ca.intermediatePem, ca.rootPem]);
    t.ok(ca.calls.at(-1)!.peerCertSerial, 'a bootstrap issued by the intermediate authenticates');
  },
);

void t.test(
  'a server that only serves HandleCSR: CreateCertificate → AGENT_E_CA_REJECTED naming CA_API',
  async (t) => {
    const ca = await devCa(t); // for its root and TLS material
    const root = await loadAuthority(ca.rootPem, ca.rootKeyPem);
    const tls = await issueServerCert(root, ['istio-citadel'], Date.now());
    const server = new grpc.Server();
    server.addService(IstioCAService, {
      HandleCSR: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        cb({ code: grpc.status.INTERNAL, details: 'x' });
      },
    });
    const port = await bindTls(server, tls);
    t.teardown(() => {
      server.forceShutdown();
    });
    const c = createCaClient({
      address: `127.0.0.1:${port}`,
      serverName: 'istio-citadel',
      rootPem: ca.rootPem,
      api: 'CreateCertificate',
      timeoutMs: 5000,
      credential: await mtls(ca),
    });
    t.teardown(() => {
      c.close();
    });
    const csr = await makeCsr(ID);
    await rejectsWithCode(
      t,
      c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR }),
      'AGENT_E_CA_REJECTED',
      /set CA_API to HandleCSR/,
    );
  },
);

void t.test(
  'a CA answering bytes that are not the message → AGENT_E_CA_BAD_RESPONSE',
  async (t) => {
    const ca = await devCa(t);
    const root = await loadAuthority(ca.rootPem, ca.rootKeyPem);
    const tls = await issueServerCert(root, ['istio-citadel'], Date.now());
    const broken: grpc.ServiceDefinition = {
      HandleCSR: {
        ...HANDLE_CSR,
        responseSerialize: () =>
          Buffer.from([0x1a, 0x05, 0x41]) /* signed_cert: 5 bytes promised, 1 sent */,
      },
    };
    const server = new grpc.Server();
    server.addService(broken, {
      HandleCSR: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => {
        cb(null, {});
      },
    });
    const port = await bindTls(server, tls);
    t.teardown(() => {
      server.forceShutdown();
    });
    const c = createCaClient({
      address: `127.0.0.1:${port}`,
      serverName: 'istio-citadel',
      rootPem: ca.rootPem,
      api: 'HandleCSR',
      timeoutMs: 5000,
      credential: { kind: 'token', token: 'a.b.c', credentialType: 'gcp' },
    });
    t.teardown(() => {
      c.close();
    });
    const csr = await makeCsr(ID);
    await rejectsWithCode(
      t,
      c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR }),
      'AGENT_E_CA_BAD_RESPONSE',
      /unreadable/,
    );
  },
);

void t.test(
  'a TCP endpoint that never speaks TLS → AGENT_E_CA_UNAVAILABLE at the deadline',
  async (t) => {
    const sockets = new Set<net.Socket>();
    const hole = net.createServer((s) => sockets.add(s)); // accepts, says nothing
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    t.teardown(() => {
      for (const s of sockets) s.destroy();
      hole.close();
    });
    const ca = await devCa(t);
    const c = createCaClient({
      address: `127.0.0.1:${(hole.address() as net.AddressInfo).port}`,
      serverName: 'istio-citadel',
      rootPem: ca.rootPem,
      api: 'HandleCSR',
      timeoutMs: 400,
      credential: await mtls(ca),
    });
    t.teardown(() => {
      c.close();
    });
    const csr = await makeCsr(ID);
    const started = Date.now();
    await rejectsWithCode(
      t,
      c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR }),
      'AGENT_E_CA_UNAVAILABLE',
      /deadline/,
    );
    t.ok(Date.now() - started < 3000, 'the deadline held');
  },
);

void t.test(
  'a CA that refuses our certificate in the TLS handshake (as Go Citadel does) → AGENT_E_CA_AUTH',
  async (t) => {
    // openssl s_server with -Verify: a TLS stack other than Node's that sends the alert.
    const ca = await devCa(t);
    const foreign = await devCa(t);
    const root = await loadAuthority(ca.rootPem, ca.rootKeyPem);
    const tls = await issueServerCert(root, ['istio-citadel'], Date.now());
    const dir = tmpDir(t, 'ca-ossl-', { mode: 0o700 });
    writeFileSync(path.join(dir, 'cert.pem'), tls.certPem);
    writeFileSync(path.join(dir, 'key.pem'), tls.keyPem);
    writeFileSync(path.join(dir, 'root.pem'), ca.rootPem);
    const csr = await makeCsr(ID);
    for (const version of ['-tls1_2', '-tls1_3']) {
      const port = await freePort();
      const srv = spawn(
        'openssl',
        [
          's_server',
          '-accept',
          `127.0.0.1:${port}`,
          '-cert',
          path.join(dir, 'cert.pem'),
          '-key',
          path.join(dir, 'key.pem'),
          '-CAfile',
          path.join(dir, 'root.pem'),
          '-Verify',
          '1',
          '-verify_return_error',
          '-alpn',
          'h2',
          version,
        ],
        { stdio: ['pipe', 'ignore', 'ignore'] },
      );
      t.teardown(() => srv.kill());
      // Wait until it accepts connections.
      for (let i = 0; i < 100; i++) {
        const ok = await new Promise<boolean>((r) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.destroy();
            r(true);
          });
          s.on('error', () => {
            r(false);
          });
        });
        if (ok) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const opts = {
        address: `127.0.0.1:${port}`,
        serverName: 'istio-citadel',
        rootPem: ca.rootPem,
        api: 'HandleCSR' as const,
        timeoutMs: 3000,
      };
      const c1 = createCaClient({ ...opts, credential: await mtls(foreign) });
      await rejectsWithCode(
        t,
        c1.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR }),
        'AGENT_E_CA_AUTH',
        /unknown ca/,
      );
      c1.close();
      const c2 = createCaClient({
        ...opts,
        credential: { kind: 'token', token: 'a.b.c', credentialType: 'gcp' },
      });
      await rejectsWithCode(
        t,
        c2.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR }),
        'AGENT_E_CA_AUTH',
        /alert/,
      );
      c2.close();
    }
  },
);

void t.test('unusable TLS material is refused when the client is made', async (t) => {
  const ca = await devCa(t);
  const a = await ca.issueBootstrap(ID, HOUR, 'ECDSA');
  const b = await ca.issueBootstrap(ID, HOUR, 'ECDSA');
  const base = {
    address: ca.address,
    serverName: 'istio-citadel',
    rootPem: ca.rootPem,
    api: 'HandleCSR' as const,
    timeoutMs: 1000,
  };
  t.throws(
    () =>
      createCaClient({
        ...base,
        credential: { kind: 'mtls', certChainPem: a.certChainPem, keyPem: b.keyPem },
      }),
    {
      code: 'AGENT_E_BOOTSTRAP_INVALID',
    },
  );
  t.throws(
    () =>
      createCaClient({
        ...base,
        credential: { kind: 'mtls', certChainPem: 'junk', keyPem: 'junk' },
      }),
    {
      code: 'AGENT_E_BOOTSTRAP_INVALID',
    },
  );
  t.throws(
    () =>
      createCaClient({
        ...base,
        rootPem: 'junk',
        credential: { kind: 'token', token: 'x', credentialType: 'gcp' },
      }),
    {
      code: 'AGENT_E_BOOTSTRAP_INVALID',
    },
  );
});

void t.test('a closed client refuses to sign', async (t) => {
  const ca = await devCa(t);
  const c = client(ca, 'HandleCSR', await mtls(ca));
  c.close();
  c.close(); // idempotent
  const csr = await makeCsr(ID);
  const e = await c
    .sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR })
    .catch((x: unknown) => x);
  t.ok(e instanceof AgentError);
  t.equal((e as AgentError).code, 'AGENT_E_INTERNAL');
});

void t.test('connect(): starts connecting before any call; a call after it works', async (t) => {
  const ca = await devCa(t);
  // A TCP listener in place of the CA: a connection arrives with no call made.
  const accepted = new Promise<void>((resolve) => {
    const s = net.createServer((sock) => {
      sock.destroy();
      resolve();
    });
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      const c = client(
        ca,
        'CreateCertificate',
        { kind: 'token', token: 't', credentialType: 'gcp' },
        {
          address: `127.0.0.1:${port}`,
        },
      );
      c.connect();
      t.teardown(() => {
        c.close();
        s.close();
      });
    });
  });
  await accepted;
  t.pass('the CA saw a connection before any call');

  const c = client(ca, 'CreateCertificate', await mtls(ca));
  c.connect();
  const csr = await makeCsr(ID, { alg: 'ECDSA' });
  const chain = await c.sign({ csrPem: csr.csrPem, identity: ID, ttlMs: HOUR });
  t.ok(chain.length >= 1, 'issued over the connection started by connect()');
  c.close();
  t.doesNotThrow(() => {
    c.connect();
  }, 'connect() after close() does nothing');
});
