import t from 'tap';
import { status } from '@grpc/grpc-js';
import {
  chainFromList,
  cleanDetails,
  isTlsFailure,
  mapCallFailure,
  retryHintMs,
  type CallContext,
} from '../../src/ca/response';
import { encodeStatusWithRetryInfo } from '../../src/ca/wire';

const A = '-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----';
const B = '-----BEGIN CERTIFICATE-----\r\nQkJC\r\n-----END CERTIFICATE-----';

void t.test('chainFromList splits every element and keeps order', (t) => {
  t.same(chainFromList([A, `${B}\n${A}`]), [A + '\n', B.replace(/\r\n/g, '\n') + '\n', A + '\n']);
  t.equal(chainFromList([]), undefined);
  t.equal(chainFromList([A, '']), undefined, 'an empty element is malformed');
  t.end();
});

void t.test('cleanDetails shortens grpc-js connection errors', (t) => {
  t.equal(
    cleanDetails(
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
    ),
    'connect ECONNREFUSED 127.0.0.1:1',
  );
  t.equal(
    cleanDetails(
      "No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: evil. is not in the cert's altnames: DNS:a. Resolution note: ",
    ),
    "Hostname/IP does not match certificate's altnames: Host: evil. is not in the cert's altnames: DNS:a",
  );
  t.equal(cleanDetails('request authenticate failure'), 'request authenticate failure');
  t.equal(
    cleanDetails(
      'No connection established. Last error: 804C8741DF7F0000:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 48. Resolution note: ',
    ),
    'tlsv1 alert unknown ca (SSL alert number 48)',
  );
  t.equal(
    cleanDetails('Deadline exceeded after 2.001s,name resolution: 0.001s,Waiting for LB pick'),
    'Deadline exceeded after 2.001s',
  );
  t.end();
});

void t.test('isTlsFailure tells handshake failures from unreachable CAs', (t) => {
  for (const d of [
    'self-signed certificate in certificate chain',
    "Hostname/IP does not match certificate's altnames",
    'unable to verify the first certificate',
    'certificate has expired',
    'error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate',
    'error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required',
    'error:0A000418:SSL routines::tlsv1 alert unknown ca',
    'error:0A00010B:SSL routines::wrong version number',
  ]) {
    t.ok(isTlsFailure(d), d);
  }
  for (const d of [
    'connect ECONNREFUSED 127.0.0.1:8060',
    'getaddrinfo ENOTFOUND istio-citadel',
    'Client network socket disconnected before secure TLS connection was established',
    'Failed to connect',
    'read ECONNRESET',
  ]) {
    t.notOk(isTlsFailure(d), d);
  }
  t.end();
});

void t.test('mapCallFailure maps each gRPC status to a code', (t) => {
  const ctx: CallContext = {
    api: 'HandleCSR',
    address: '10.0.0.1:8060',
    serverName: 'istio-citadel',
    credential: 'mtls',
  };
  const table: [status, string, string][] = [
    [
      status.UNAVAILABLE,
      'No connection established. Last error: Error: connect ECONNREFUSED 10.0.0.1:8060.',
      'AGENT_E_CA_UNAVAILABLE',
    ],
    [
      status.UNAVAILABLE,
      'No connection established. Last error: Error: self-signed certificate in certificate chain.',
      'AGENT_E_CA_AUTH',
    ],
    [status.DEADLINE_EXCEEDED, 'Deadline exceeded after 10.001s', 'AGENT_E_CA_UNAVAILABLE'],
    [status.RESOURCE_EXHAUSTED, 'overloaded', 'AGENT_E_CA_OVERLOADED'],
    [
      status.RESOURCE_EXHAUSTED,
      'Received message larger than max (700000 vs 131072)',
      'AGENT_E_CA_BAD_RESPONSE',
    ],
    [status.UNKNOWN, 'panic', 'AGENT_E_CA_UNAVAILABLE'],
    [status.UNAUTHENTICATED, 'request authenticate failure', 'AGENT_E_CA_AUTH'],
    [status.PERMISSION_DENIED, 'not allowed', 'AGENT_E_CA_AUTH'],
    [status.INVALID_ARGUMENT, 'CSR parsing error', 'AGENT_E_CA_REJECTED'],
    [status.INTERNAL, 'CSR signing error (TTL)', 'AGENT_E_CA_REJECTED'],
    [status.INTERNAL, 'Response message parsing error: illegal buffer', 'AGENT_E_CA_BAD_RESPONSE'],
    [status.UNIMPLEMENTED, 'The server does not implement the method', 'AGENT_E_CA_REJECTED'],
    [status.FAILED_PRECONDITION, 'x', 'AGENT_E_CA_REJECTED'],
  ];
  for (const [code, details, want] of table) {
    const e = mapCallFailure({ code, details }, ctx);
    t.equal(e.code, want, `${status[code]} "${details}" → ${want}`);
    t.match(e.message, /10\.0\.0\.1:8060/, 'names the CA');
    t.same(e.details?.grpcCode, status[code]);
  }
  t.match(
    mapCallFailure({ code: status.UNIMPLEMENTED, details: '' }, ctx).message,
    /set CA_API to CreateCertificate/,
  );
  t.match(
    mapCallFailure(
      { code: status.UNIMPLEMENTED, details: '' },
      { ...ctx, api: 'CreateCertificate' },
    ).message,
    /set CA_API to HandleCSR/,
  );
  t.match(mapCallFailure({ code: status.UNAUTHENTICATED, details: 'x' }, ctx).message, /CERTS_DIR/);
  t.match(
    mapCallFailure({ code: status.UNAUTHENTICATED, details: 'x' }, { ...ctx, credential: 'token' })
      .message,
    /GCE_IDENTITY_AUDIENCE/,
  );
  t.equal(mapCallFailure({ code: status.UNAVAILABLE, details: 'x' }, ctx).retryable, true);
  t.equal(mapCallFailure({ code: status.UNAUTHENTICATED, details: 'x' }, ctx).retryable, false);
  t.end();
});

void t.test('retry hints: grpc-retry-pushback-ms and RetryInfo, the larger wins', (t) => {
  const table: [string | undefined, Buffer | undefined, number | undefined, string][] = [
    [undefined, undefined, undefined, 'none'],
    ['30000', undefined, 30_000, 'pushback'],
    ['0', undefined, undefined, 'zero: no wait asked'],
    ['-1', undefined, undefined, 'negative (gRPC: do not retry): not a wait'],
    ['soon', undefined, undefined, 'not a number'],
    ['1e9', undefined, undefined, 'not an integer string'],
    ['99999999999999999999', undefined, undefined, 'absurd'],
    [undefined, encodeStatusWithRetryInfo(8, 'x', 4500), 4500, 'RetryInfo'],
    ['1000', encodeStatusWithRetryInfo(8, 'x', 4500), 4500, 'both: the larger'],
    ['9000', encodeStatusWithRetryInfo(8, 'x', 4500), 9000, 'both: the larger (pushback)'],
    [undefined, Buffer.from('garbage'), undefined, 'unreadable details'],
  ];
  for (const [pushback, details, want, why] of table)
    t.equal(retryHintMs(pushback, details), want, why);
  t.end();
});

void t.test('RESOURCE_EXHAUSTED from the CA is AGENT_E_CA_OVERLOADED; hints ride along', (t) => {
  const ctx: CallContext = {
    api: 'CreateCertificate',
    address: '10.0.0.1:15012',
    serverName: 'istiod',
    credential: 'mtls',
  };
  const over = mapCallFailure(
    { code: status.RESOURCE_EXHAUSTED, details: 'rate limited', retryAfterMs: 30_000 },
    ctx,
  );
  t.equal(over.code, 'AGENT_E_CA_OVERLOADED');
  t.equal(over.retryable, true);
  t.equal(over.retryAfterMs, 30_000);
  t.match(over.message, /10\.0\.0\.1:15012.*overloaded.*rate limited/);
  t.equal(
    mapCallFailure({ code: status.RESOURCE_EXHAUSTED, details: 'rate limited' }, ctx).retryAfterMs,
    undefined,
  );
  const away = mapCallFailure(
    { code: status.UNAVAILABLE, details: 'draining', retryAfterMs: 5000 },
    ctx,
  );
  t.equal(away.code, 'AGENT_E_CA_UNAVAILABLE');
  t.equal(away.retryAfterMs, 5000, 'a hint on UNAVAILABLE too');
  t.equal(
    mapCallFailure(
      { code: status.RESOURCE_EXHAUSTED, details: 'Received message larger than max (9 vs 1)' },
      ctx,
    ).code,
    'AGENT_E_CA_BAD_RESPONSE',
    "grpc-js's own size cap is not the CA being overloaded",
  );
  t.end();
});
