// The GCE identity source against the metadata-server test double on loopback (no root needed).
import t from 'tap';
import * as net from 'node:net';
import {
  detectGce,
  fetchIdentityToken,
  fetchServiceAccountEmail,
  gceIdentity,
} from '../../src/identity/index';
import { rejectsWithCode as rejectsWith } from '../helpers/agent-error';
import { fakeJwt, startGceMetadataDouble } from '../doubles/gce-metadata-server';

const AUD = 'grpc://istio-citadel:8060';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
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

void t.test(
  'identity token: GET …/identity?audience=…&format=full with Metadata-Flavor: Google',
  async (t) => {
    const md = await startGceMetadataDouble();
    t.teardown(() => md.close());
    const token = await fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 });
    t.equal(token, md.token);
    const r = md.requests.at(-1)!;
    t.equal(r.path, '/computeMetadata/v1/instance/service-accounts/default/identity');
    t.same(r.query, { audience: AUD, format: 'full' });
    t.equal(r.flavor, 'Google', 'the request carries the header');
  },
);

void t.test('each call fetches a fresh token', async (t) => {
  const md = await startGceMetadataDouble();
  t.teardown(() => md.close());
  const a = await fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 });
  md.token = fakeJwt({ aud: AUD, n: 2 });
  const b = await fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 });
  t.not(a, b);
  t.equal(b, md.token);
  t.equal(md.requests.length, 2);
});

void t.test('service account email and the identity 1.0 derived from it', async (t) => {
  const md = await startGceMetadataDouble({ email: 'vm-1@proj.iam.gserviceaccount.com' });
  t.teardown(() => md.close());
  const email = await fetchServiceAccountEmail({ host: md.host, timeoutMs: 2000 });
  t.equal(email, 'vm-1@proj.iam.gserviceaccount.com');
  t.equal(md.requests.at(-1)!.path, '/computeMetadata/v1/instance/service-accounts/default/email');
  t.equal(
    gceIdentity(email),
    'spiffe://cluster.local/ns/default/sa/vm-1@proj.iam.gserviceaccount.com',
  );
});

void t.test('an answer without Metadata-Flavor: Google is refused', async (t) => {
  const md = await startGceMetadataDouble({ mode: 'no-flavor' });
  t.teardown(() => md.close());
  const e = await rejectsWith(
    t,
    fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /Metadata-Flavor: Google/,
  );
  t.notMatch(e.message, md.token, 'the token is not in the message');
  await rejectsWith(
    t,
    fetchServiceAccountEmail({ host: md.host, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
  );
});

void t.test('404 is refused', async (t) => {
  const md = await startGceMetadataDouble({ mode: 'not-found' });
  t.teardown(() => md.close());
  await rejectsWith(
    t,
    fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /HTTP 404/,
  );
  await rejectsWith(
    t,
    fetchServiceAccountEmail({ host: md.host, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /HTTP 404/,
  );
});

void t.test('an empty body is refused', async (t) => {
  const md = await startGceMetadataDouble({ mode: 'empty' });
  t.teardown(() => md.close());
  await rejectsWith(
    t,
    fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /empty/,
  );
});

void t.test('a body over 64 KiB is refused, token and email alike', async (t) => {
  const md = await startGceMetadataDouble({ mode: 'huge', hugeBytes: 1 << 20 });
  t.teardown(() => md.close());
  await rejectsWith(
    t,
    fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 5000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /64 KiB/,
  );
  await rejectsWith(
    t,
    fetchServiceAccountEmail({ host: md.host, timeoutMs: 5000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /64 KiB/,
  );
  md.hugeBytes = 60 * 1024;
  const token = await fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 5000 });
  t.ok(token.length > 50_000, 'a body under the cap is still read');
});

void t.test(
  'an endless body: refused once past the cap, without waiting for its end or the timeout',
  async (t) => {
    const md = await startGceMetadataDouble({ mode: 'endless' });
    t.teardown(() => md.close());
    // Before the cap the whole body was buffered: this ran into the timeout (UNAVAILABLE).
    await rejectsWith(
      t,
      fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 30_000 }),
      'AGENT_E_METADATA_BAD_RESPONSE',
      /64 KiB/,
    );
    await rejectsWith(
      t,
      fetchServiceAccountEmail({ host: md.host, timeoutMs: 30_000 }),
      'AGENT_E_METADATA_BAD_RESPONSE',
      /64 KiB/,
    );
  },
);

void t.test('a token that is not a JWT, or an email that is not one, is refused', async (t) => {
  const md = await startGceMetadataDouble({
    token: '<html>captive portal</html>',
    email: 'not an email',
  });
  t.teardown(() => md.close());
  const e = await rejectsWith(
    t,
    fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /not a JWT/,
  );
  t.notMatch(e.message, 'captive', 'the body is not echoed');
  await rejectsWith(
    t,
    fetchServiceAccountEmail({ host: md.host, timeoutMs: 2000 }),
    'AGENT_E_METADATA_BAD_RESPONSE',
    /not an email/,
  );
});

void t.test('nothing listening: unavailable (retryable)', async (t) => {
  const host = `127.0.0.1:${await closedPort()}`;
  const e = await rejectsWith(
    t,
    fetchIdentityToken({ host, audience: AUD, timeoutMs: 2000 }),
    'AGENT_E_METADATA_UNAVAILABLE',
    /ECONNREFUSED/,
  );
  t.equal(e.retryable, true);
  await rejectsWith(
    t,
    fetchServiceAccountEmail({ host, timeoutMs: 2000 }),
    'AGENT_E_METADATA_UNAVAILABLE',
  );
});

void t.test(
  'a slow server: unavailable once the timeout passes, without waiting for it',
  async (t) => {
    const md = await startGceMetadataDouble({ mode: 'slow', delayMs: 10_000 });
    t.teardown(() => md.close());
    const started = Date.now();
    await rejectsWith(
      t,
      fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 200 }),
      'AGENT_E_METADATA_UNAVAILABLE',
      /within 200 ms/,
    );
    t.ok(Date.now() - started < 8000, 'gave up before the double answered');
  },
);

void t.test('the caller aborting rejects with its reason', async (t) => {
  const md = await startGceMetadataDouble({ mode: 'slow', delayMs: 10_000 });
  t.teardown(() => md.close());
  const ac = new AbortController();
  const reason = new Error('shutting down');
  setTimeout(() => {
    ac.abort(reason);
  }, 50);
  await t.rejects(
    fetchIdentityToken({ host: md.host, audience: AUD, timeoutMs: 5000, signal: ac.signal }),
    reason,
  );
});

void t.test('detectGce: true only for an answer with the header, false otherwise', async (t) => {
  const md = await startGceMetadataDouble();
  t.teardown(() => md.close());
  t.equal(await detectGce({ host: md.host, timeoutMs: 1000 }), true, 'metadata server');
  t.equal(md.requests.at(-1)!.flavor, 'Google');
  md.mode = 'not-found';
  t.equal(
    await detectGce({ host: md.host, timeoutMs: 1000 }),
    true,
    'any answer with the header counts',
  );
  md.mode = 'no-flavor';
  t.equal(
    await detectGce({ host: md.host, timeoutMs: 1000 }),
    false,
    'no header: some other server',
  );
  md.mode = 'slow';
  md.delayMs = 10_000;
  const started = Date.now();
  t.equal(await detectGce({ host: md.host, timeoutMs: 200 }), false, 'too slow');
  t.ok(Date.now() - started < 8000, 'did not wait for the answer');
  t.equal(
    await detectGce({ host: `127.0.0.1:${await closedPort()}`, timeoutMs: 1000 }),
    false,
    'nothing listening',
  );
});
