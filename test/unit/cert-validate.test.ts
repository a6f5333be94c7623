import t from 'tap';
import { checkIssued, MAX_CHAIN_CERTS, MAX_RESPONSE_BYTES } from '../../src/certs/validate';
import { generateWorkloadKey } from '../../src/certs/keys';
import { certificateSans, identityFromSans, identityOfCertificate } from '../../src/identity/san';
import { AgentError } from '../../src/lib/errors';
import { makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const now = Date.now();

async function code(fn: () => unknown): Promise<string> {
  try {
    fn();
  } catch (e) {
    if (e instanceof AgentError) return e.code;
    throw e;
  }
  return 'accepted';
}

t.test('response checks', async (t) => {
  const root = await makeRoot();
  const inter = await makeIntermediate(root);
  const foreign = await makeRoot('CN=foreign root');
  const key = await generateWorkloadKey('ECDSA');
  const good = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  const base = {
    key: key.object,
    identity: ID,
    rootPem: root.certPem,
    now,
    skewMs: 300_000,
    ttlMs: 24 * 3600_000,
  };

  const ok = checkIssued({ ...base, response: [good.certPem] });
  t.equal(ok.notAfter, Math.floor((now + 3600_000) / 1000) * 1000, 'notAfter read from the leaf');
  t.same(ok.chain, [good.certPem]);

  // HandleCSR style: signed_cert + intermediates; CreateCertificate style: leaf, inter, root
  const viaInter = await makeLeaf(inter, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.same(checkIssued({ ...base, response: [viaInter.certPem, inter.certPem] }).chain, [
    viaInter.certPem,
    inter.certPem,
  ]);
  t.same(
    checkIssued({ ...base, response: [viaInter.certPem + inter.certPem + root.certPem] }).chain,
    [viaInter.certPem, inter.certPem],
    'a trailing trust anchor is dropped from cert-chain.pem',
  );

  const otherKey = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [otherKey.certPem] })),
    'AGENT_E_CERT_KEY_MISMATCH',
    'wrong key',
  );

  const wrongSan = await makeLeaf(root, {
    sans: [{ type: 'url', value: 'spiffe://cluster.local/ns/default/sa/other' }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [wrongSan.certPem] })),
    'AGENT_E_CERT_SAN_MISMATCH',
    'wrong SAN',
  );

  const noSan = await makeLeaf(root, {
    sans: [],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [noSan.certPem] })),
    'AGENT_E_CERT_SAN_MISMATCH',
    'no SAN',
  );

  const expired = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 7200_000,
    notAfter: now - 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [expired.certPem] })),
    'AGENT_E_CERT_VALIDITY',
    'expired',
  );

  const future = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now + 3600_000,
    notAfter: now + 7200_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [future.certPem] })),
    'AGENT_E_CERT_VALIDITY',
    'not yet valid beyond skew',
  );
  const slightlyAhead = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now + 60_000,
    notAfter: now + 7200_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [slightlyAhead.certPem] })),
    'accepted',
    'within skew is accepted',
  );

  const foreignLeaf = await makeLeaf(foreign, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [foreignLeaf.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'foreign chain',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [foreignLeaf.certPem, foreign.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'foreign chain that carries its own root',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [viaInter.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'missing intermediate',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [viaInter.certPem, foreign.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'wrong intermediate',
  );

  t.equal(
    await code(() => checkIssued({ ...base, response: ['garbage'] })),
    'AGENT_E_CERT_PARSE',
    'not PEM',
  );
  t.equal(
    await code(() =>
      checkIssued({
        ...base,
        response: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
      }),
    ),
    'AGENT_E_CERT_PARSE',
    'PEM armour around garbage',
  );
  t.equal(await code(() => checkIssued({ ...base, response: [] })), 'AGENT_E_CERT_PARSE', 'empty');
});

t.test('bounds on what the CA returns (issue 9, item 6)', async (t) => {
  const root = await makeRoot();
  const key = await generateWorkloadKey('ECDSA');
  const HOUR = 3600_000;
  const YEAR = 365 * 24 * HOUR;
  const base = {
    key: key.object,
    identity: ID,
    rootPem: root.certPem,
    now,
    skewMs: 300_000,
    ttlMs: 24 * HOUR,
  };
  const leaf = async (issuer: Awaited<ReturnType<typeof makeRoot>>, notAfter: number) =>
    (
      await makeLeaf(issuer, {
        sans: [{ type: 'url', value: ID }],
        notBefore: now - 1000,
        notAfter,
        key,
      })
    ).certPem;
  const good = await leaf(root, now + HOUR);

  const copies = (n: number): string[] => Array.from({ length: n }, () => root.certPem);
  t.equal(
    await code(() => checkIssued({ ...base, response: [good, ...copies(999)] })),
    'AGENT_E_CA_BAD_RESPONSE',
    'a leaf and 999 copies of the root: refused by size before anything is parsed',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [good + copies(999).join('')] })),
    'AGENT_E_CA_BAD_RESPONSE',
    'the same in one PEM string',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [good, ...copies(MAX_CHAIN_CERTS)] })),
    'AGENT_E_CERT_CHAIN',
    `a chain of ${MAX_CHAIN_CERTS + 1} certificates (under the size cap) is too long`,
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [good, root.certPem, root.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'a certificate repeated in the chain',
  );
  t.ok(MAX_RESPONSE_BYTES <= 256 * 1024, 'the size cap is small');

  // A legitimate chain of exactly MAX_CHAIN_CERTS: leaf, 8 intermediates, root.
  let top = root;
  const inters: string[] = [];
  for (let i = 0; i < MAX_CHAIN_CERTS - 2; i++) {
    top = await makeIntermediate(top, `CN=intermediate ${i}`);
    inters.unshift(top.certPem);
  }
  const deep = await leaf(top, now + HOUR);
  t.equal(
    checkIssued({ ...base, response: [deep, ...inters, root.certPem] }).chain.length,
    MAX_CHAIN_CERTS - 1,
    `a chain of ${MAX_CHAIN_CERTS} is accepted (the trailing root dropped)`,
  );

  const century = await leaf(root, now + 100 * YEAR);
  const e = (() => {
    try {
      checkIssued({ ...base, ttlMs: 60_000, response: [century] });
    } catch (err) {
      return err as AgentError;
    }
    return undefined;
  })();
  t.equal(e?.code, 'AGENT_E_CERT_VALIDITY', 'a 100-year leaf for a requested 60 s is refused');
  t.match(e?.message ?? '', /WORKLOAD_CERT_TTL/, 'the message says what was asked for');
  const withinSkew = await leaf(root, now + 60_000 + 240_000);
  const pastSkew = await leaf(root, now + 60_000 + 400_000);
  t.equal(
    await code(() => checkIssued({ ...base, ttlMs: 60_000, response: [withinSkew] })),
    'accepted',
    'a leaf longer than asked by less than the clock skew is accepted',
  );
  t.equal(
    await code(() => checkIssued({ ...base, ttlMs: 60_000, response: [pastSkew] })),
    'AGENT_E_CERT_VALIDITY',
    'longer than asked by more than the clock skew',
  );

  // The root lives 10 years, the intermediate 5: a leaf must not outlive either.
  const inter = await makeIntermediate(root);
  const pastInter = await leaf(inter, now + 6 * YEAR);
  t.equal(
    await code(() =>
      checkIssued({ ...base, ttlMs: 7 * YEAR, response: [pastInter, inter.certPem] }),
    ),
    'AGENT_E_CERT_VALIDITY',
    'a leaf that outlives its intermediate',
  );
  const pastRoot = await leaf(root, now + 11 * YEAR);
  const inside = await leaf(inter, now + 4 * YEAR);
  t.equal(
    await code(() => checkIssued({ ...base, ttlMs: 20 * YEAR, response: [pastRoot] })),
    'AGENT_E_CERT_VALIDITY',
    'a leaf that outlives the root it verifies to',
  );
  t.equal(
    await code(() =>
      checkIssued({
        ...base,
        ttlMs: 5 * YEAR,
        response: [inside, inter.certPem],
      }),
    ),
    'accepted',
    'inside every issuer: accepted',
  );
});

t.test('identity from SANs (Istio 1.0 rules)', async (t) => {
  const table: [{ type: 'uri' | 'dns' | 'ip'; value: string }[], string | undefined][] = [
    [[{ type: 'uri', value: ID }], ID],
    [[{ type: 'dns', value: 'vm.example.com' }], 'vm.example.com'],
    [
      [
        { type: 'dns', value: 'a' },
        { type: 'uri', value: ID },
        { type: 'uri', value: 'spiffe://x/y' },
      ],
      ID,
    ],
    [
      [
        { type: 'dns', value: 'a' },
        { type: 'dns', value: 'b' },
      ],
      undefined,
    ],
    [[], undefined],
  ];
  for (const [sans, want] of table) t.equal(identityFromSans(sans), want, JSON.stringify(sans));

  const root = await makeRoot();
  const two = await makeLeaf(root, {
    sans: [
      { type: 'dns', value: 'vm' },
      { type: 'url', value: ID },
    ],
    notBefore: now,
    notAfter: now + 1000,
  });
  t.same(certificateSans(two.certPem), [
    { type: 'dns', value: 'vm' },
    { type: 'uri', value: ID },
  ]);
  t.equal(identityOfCertificate(two.certPem, 'cert-chain.pem'), ID);
  const none = await makeLeaf(root, { sans: [], notBefore: now, notAfter: now + 1000 });
  t.throws(() => identityOfCertificate(none.certPem, 'cert-chain.pem'), {
    code: 'AGENT_E_IDENTITY_SAN',
  });
  t.throws(() => identityOfCertificate('nope', 'cert-chain.pem'), {
    code: 'AGENT_E_BOOTSTRAP_INVALID',
  });
});

t.test("parsing Node's subjectAltName text", async (t) => {
  const { parseSubjectAltName } = await import('../../src/identity/san');
  t.same(
    parseSubjectAltName(
      'URI:spiffe://cluster.local/ns/a/sa/b, DNS:vm.example.com, IP Address:10.1.2.3',
    ),
    [
      { type: 'uri', value: 'spiffe://cluster.local/ns/a/sa/b' },
      { type: 'dns', value: 'vm.example.com' },
      { type: 'ip', value: '10.1.2.3' },
    ],
  );
  t.same(parseSubjectAltName('URI:"spiffe://x/a, b", DNS:y'), [
    { type: 'uri', value: 'spiffe://x/a, b' },
    { type: 'dns', value: 'y' },
  ]);
  t.same(parseSubjectAltName(undefined), []);
  const root = await makeRoot();
  const odd = await makeLeaf(root, {
    sans: [
      { type: 'url', value: 'spiffe://x/with,comma' },
      { type: 'ip', value: '10.0.0.1' },
    ],
    notBefore: now,
    notAfter: now + 1000,
  });
  t.same(certificateSans(odd.certPem), [
    { type: 'uri', value: 'spiffe://x/with,comma' },
    { type: 'ip', value: '10.0.0.1' },
  ]);
});
